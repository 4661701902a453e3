import type { HeadView, Match } from './head-view.js';
import { CONECTIX } from './vhd.js';
import { matchVmdk } from './vmdk.js';

/** Formats whose data must never be accepted as raw: qemu would interpret it. */
export type Container = 'qcow2' | 'vmdk' | 'vhdx' | 'vdi' | 'qed' | 'vhd';

const at = (offset: number, magic: string) => {
  const bytes = Buffer.from(magic, 'latin1');
  return (v: HeadView) => v.magicAt(offset, bytes);
};

const MATCHERS: Record<Container, (v: HeadView) => Match> = {
  qcow2: at(0, 'QFI\xfb'),
  vmdk: matchVmdk,
  vhdx: at(0, 'vhdxfile'),
  vdi: at(0x40, '\x7f\x10\xda\xbe'), // 0xBEDA107F little-endian
  qed: at(0, 'QED\0'),
  vhd: (v) => v.magicAt(0, CONECTIX), // dynamic/differencing: footer copy at 0
};

export const CONTAINERS = Object.keys(MATCHERS) as Container[];

export const isContainer = (f: string): f is Container => Object.hasOwn(MATCHERS, f);

/** What a declared format's reject reason says is missing. */
export const MISSING_MAGIC: Record<Container, string> = {
  qcow2: 'no QFI\\xfb magic',
  vmdk: 'no KDMV magic or "# Disk DescriptorFile" descriptor',
  vhdx: 'no vhdxfile magic',
  vdi: 'no 0xBEDA107F magic at offset 0x40',
  qed: 'no QED\\0 magic',
  vhd: 'no conectix cookie',
};

export const ISO_MAGIC = { offset: 32769, bytes: Buffer.from('CD001', 'latin1') };

export function scan(v: HeadView): { found: Container[]; pending: Container[] } {
  const found: Container[] = [];
  const pending: Container[] = [];
  for (const f of CONTAINERS) {
    const m = MATCHERS[f](v);
    if (m === 'yes') found.push(f);
    else if (m === 'short') pending.push(f);
  }
  return { found, pending };
}
