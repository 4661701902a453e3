import type { HeadView, Match } from './head-view.js';
import { FOREIGN_MATCHERS, type Foreign } from './probes.js';
import { CONECTIX } from './vhd.js';
import { matchVmdk } from './vmdk.js';
import { latin1 } from './bytes.js';

/** Formats a disk_format can name, whose data must never be accepted as raw: qemu would interpret it. */
export type Container = 'qcow2' | 'vmdk' | 'vhdx' | 'vdi' | 'qed' | 'vhd';
/** Whatever the head may turn out to be. */
export type Detected = Container | Foreign;

const at = (offset: number, magic: string) => {
  const bytes = latin1(magic);
  return (v: HeadView) => v.magicAt(offset, bytes);
};

const CONTAINER_MATCHERS: Record<Container, (v: HeadView) => Match> = {
  qcow2: at(0, 'QFI\xfb'),
  vmdk: matchVmdk,
  vhdx: at(0, 'vhdxfile'),
  vdi: at(0x40, '\x7f\x10\xda\xbe'), // 0xBEDA107F little-endian
  qed: at(0, 'QED\0'),
  vhd: (v) => v.magicAt(0, CONECTIX), // dynamic/differencing: footer copy at 0
};

const MATCHERS: Record<Detected, (v: HeadView) => Match> = { ...CONTAINER_MATCHERS, ...FOREIGN_MATCHERS };

export const CONTAINERS = Object.keys(CONTAINER_MATCHERS) as Container[];
const DETECTABLE = Object.keys(MATCHERS) as Detected[];

export const isContainer = (f: string): f is Container => Object.hasOwn(CONTAINER_MATCHERS, f);

/** What a declared format's reject reason says is missing. */
export const MISSING_MAGIC: Record<Container, string> = {
  qcow2: 'no QFI\\xfb magic',
  vmdk: 'no KDMV magic',
  vhdx: 'no vhdxfile magic',
  vdi: 'no 0xBEDA107F magic at offset 0x40',
  qed: 'no QED\\0 magic',
  vhd: 'no conectix cookie',
};

export const ISO_MAGIC = { offset: 32769, bytes: latin1('CD001') };

export function scan(v: HeadView): { found: Detected[]; pending: Detected[] } {
  const found: Detected[] = [];
  const pending: Detected[] = [];
  for (const f of DETECTABLE) {
    const m = MATCHERS[f](v);
    if (m === 'yes') found.push(f);
    else if (m === 'short') pending.push(f);
  }
  return { found, pending };
}
