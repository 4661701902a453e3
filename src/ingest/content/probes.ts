import type { HeadView, Match } from './head-view.js';
import { latin1 as bytes, u32leBytes as u32le } from './bytes.js';

/**
 * qemu's probes for formats that are never a Glance disk_format of their own. Data any of
 * them claims must not pass as raw: qemu left to guess would open it as that format.
 */
export type Foreign = 'parallels' | 'bochs' | 'cloop' | 'luks';

/** Every part must match. */
export function allOf(...ms: Match[]): Match {
  if (ms.includes('no')) return 'no';
  return ms.includes('short') ? 'short' : 'yes';
}

/** One alternative is enough. */
export function anyOf(...ms: Match[]): Match {
  if (ms.includes('yes')) return 'yes';
  return ms.includes('short') ? 'short' : 'no';
}

const PARALLELS_VERSION = u32le(2);
const CLOOP = bytes('#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n');

export const FOREIGN_MATCHERS: Record<Foreign, (v: HeadView) => Match> = {
  parallels: (v) =>
    allOf(
      anyOf(v.probeAt(0, bytes('WithoutFreeSpace')), v.probeAt(0, bytes('WithouFreSpacExt'))),
      v.probeAt(16, PARALLELS_VERSION),
    ),
  // C strings: each field ends in a NUL.
  bochs: (v) =>
    allOf(
      v.probeAt(0, bytes('Bochs Virtual HD Image\0')),
      v.probeAt(32, bytes('Redolog\0')),
      v.probeAt(48, bytes('Growing\0')),
      anyOf(v.probeAt(64, u32le(0x00020000)), v.probeAt(64, u32le(0x00010000))),
    ),
  cloop: (v) => v.probeAt(0, CLOOP),
  // LUKS version 1 only: qemu's probe does not know version 2.
  luks: (v) => v.probeAt(0, bytes('LUKS\xba\xbe\x00\x01')),
};
