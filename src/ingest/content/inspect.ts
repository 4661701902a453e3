/**
 * Pure content checks of an upload against its declared Glance disk_format.
 * No I/O: callers hand in the first HEAD_BYTES and, for vhd, the last TAIL_BYTES.
 */
import { HeadView } from './head-view.js';
import { ISO_MAGIC, MISSING_MAGIC, isContainer, scan, type Container } from './magic.js';
import { checkQcow2, qcowName } from './qcow2.js';
import { checkFooter, FOOTER_BYTES } from './vhd.js';
import { needMore, ok, reject, type Verdict } from './verdict.js';

export type { Verdict } from './verdict.js';

export const HEAD_BYTES = 64 * 1024;
export const TAIL_BYTES = FOOTER_BYTES;

/** Formats not listed here (zvhd, qcow, ploop, ami, unknown, ...) are never refused. */
const inspectable = (f: string) => f === 'raw' || f === 'iso' || isContainer(f);

export function inspectHead(diskFormat: string, head: Buffer, size: number, complete: boolean): Verdict {
  if (!inspectable(diskFormat)) return ok();
  const v = viewOf(head, size, complete);
  const { found, pending } = scan(v);
  const name = (f: Container) => (f === 'qcow2' ? qcowName(v) : f);
  const first = found[0];

  if (diskFormat === 'raw') {
    if (first) return reject(`data is ${name(first)} but disk_format is raw`);
    return pending.length ? needMore() : ok();
  }
  if (diskFormat === 'iso') {
    if (first) return reject(`data is ${name(first)} but disk_format is iso`);
    const m = v.magicAt(ISO_MAGIC.offset, ISO_MAGIC.bytes);
    if (m === 'no') return reject(`data is not iso (no CD001 at offset ${ISO_MAGIC.offset})`);
    return m === 'short' || pending.length ? needMore() : ok();
  }
  if (!isContainer(diskFormat)) return ok(); // unreachable: inspectable() covers it

  const other = found.find((f) => f !== diskFormat);
  if (other) {
    return reject(
      found.includes(diskFormat)
        ? `data matches both ${diskFormat} and ${name(other)}`
        : `data is ${name(other)} but disk_format is ${diskFormat}`,
    );
  }
  if (found.includes(diskFormat)) {
    const r = diskFormat === 'qcow2' ? checkQcow2(v) : ok();
    // Still wait for the other magics so a polyglot cannot slip through.
    return r.kind === 'reject' || !pending.length ? r : needMore();
  }
  // Own magic absent: decided now; waiting would only let us name the other format.
  if (diskFormat !== 'vhd' && !pending.includes(diskFormat)) {
    return reject(`data is not ${diskFormat} (${MISSING_MAGIC[diskFormat]})`);
  }
  if (pending.length) return needMore();
  // No conectix at 0 may still be a fixed VHD: its only footer is at the end.
  return v.whole ? checkFooter(head) : ok();
}

/** True for a vhd whose head had no conectix cookie and no other container magic. */
export function needsTail(diskFormat: string, head: Buffer): boolean {
  return diskFormat === 'vhd' && scan(new HeadView(head, head.length, false)).found.length === 0;
}

export function inspectTail(diskFormat: string, tail: Buffer): Verdict {
  return diskFormat === 'vhd' ? checkFooter(tail) : ok();
}

/** How far the head can ever reach: the declared size caps it, so short files decide early. */
function viewOf(head: Buffer, size: number, complete: boolean): HeadView {
  const known = Number.isFinite(size) && size >= 0;
  if (complete || (known && head.length >= size)) return new HeadView(head, head.length, true);
  const reach = Math.min(HEAD_BYTES, known ? size : Infinity);
  return new HeadView(head, Math.max(head.length, reach), false);
}
