/**
 * Content checks of an upload against its declared Glance disk_format. inspectHead and
 * inspectTail are pure: callers hand in the first HEAD_BYTES and, for vhd, the last
 * TAIL_BYTES. inspectStored runs every check on a complete stored file.
 */
import { HEAD_BYTES, HeadView } from './head-view.js';
import { ISO_MAGIC, MISSING_MAGIC, isContainer, scan, type Container, type Detected } from './magic.js';
import { checkQcow2, qcowName } from './qcow2.js';
import { checkQed } from './qed.js';
import { checkFooter, checkFooterCopy, checkVhdHead, FOOTER_BYTES } from './vhd.js';
import { checkVhdx, type ReadAt } from './vhdx.js';
import { checkVmdk } from './vmdk.js';
import { needMore, ok, reject, type Verdict } from './verdict.js';

export type { Verdict } from './verdict.js';
export type { ReadAt } from './vhdx.js';
export { HEAD_BYTES } from './head-view.js';

export const TAIL_BYTES = FOOTER_BYTES;

/** Formats not listed here (zvhd, qcow, ploop, ami, unknown, ...) are never refused. */
const inspectable = (f: string) => f === 'raw' || f === 'iso' || isContainer(f);

/** What each format must also pass once its magic is found. */
const CHECKS: Partial<Record<Container, (v: HeadView) => Verdict>> = {
  qcow2: checkQcow2,
  vmdk: checkVmdk,
  qed: checkQed,
  vhd: checkVhdHead,
};

export function inspectHead(diskFormat: string, head: Uint8Array, size: number, complete: boolean): Verdict {
  if (!inspectable(diskFormat)) return ok();
  const v = viewOf(head, size, complete);
  const { found, pending } = scan(v);
  const name = (f: Detected) => (f === 'qcow2' ? qcowName(v) : f);
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
    const r = CHECKS[diskFormat]?.(v) ?? ok();
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
export function needsTail(diskFormat: string, head: Uint8Array): boolean {
  return diskFormat === 'vhd' && scan(new HeadView(head, head.length, false)).found.length === 0;
}

export function inspectTail(diskFormat: string, tail: Uint8Array): Verdict {
  return diskFormat === 'vhd' ? checkFooter(tail) : ok();
}

/**
 * Every check on a complete stored file: the head, a VHD's footer at the end, and a
 * VHDX's metadata region, which lies past the head. `read` may return fewer bytes at the end.
 */
export async function inspectStored(diskFormat: string, size: number, read: ReadAt): Promise<Verdict> {
  const head = await read(0, Math.min(HEAD_BYTES, size));
  const verdict = inspectHead(diskFormat, head, size, true);
  // A complete file leaves nothing to wait for; a check that still does cannot vouch for it.
  if (verdict.kind === 'need-more') return reject('content could not be judged (the file ends too early)');
  if (verdict.kind === 'reject') return verdict;
  if (diskFormat === 'vhd') {
    const length = Math.min(TAIL_BYTES, size);
    const tail = await read(size - length, length);
    return needsTail(diskFormat, head) ? inspectTail(diskFormat, tail) : checkFooterCopy(tail);
  }
  return diskFormat === 'vhdx' ? checkVhdx(size, read) : ok();
}

const NOT_STORED = Symbol('not stored yet');

/** Whether a format has checks that read past the head before the upload completes. */
export const readsPastHead = (diskFormat: string) => diskFormat === 'vhdx';

/**
 * The checks of inspectStored that read past the head (a VHDX's metadata), on a file of
 * which only [0, stored) is there yet: need-more until the bytes they read are stored.
 */
export async function inspectStoredSoFar(diskFormat: string, size: number, stored: number, read: ReadAt): Promise<Verdict> {
  if (!readsPastHead(diskFormat)) return ok();
  const storedOnly: ReadAt = async (start, length) => {
    if (Math.min(start + length, size) > stored) throw NOT_STORED;
    return read(start, length);
  };
  return checkVhdx(size, storedOnly).catch((err: unknown) => {
    if (err === NOT_STORED) return needMore();
    throw err;
  });
}

/**
 * How far the head can ever reach: the declared size caps it, so short files decide early.
 * `complete` says no more bytes will come; the head itself is still only the first HEAD_BYTES.
 */
function viewOf(head: Uint8Array, size: number, complete: boolean): HeadView {
  const known = Number.isFinite(size) && size >= 0;
  if ((known && head.length >= size) || (complete && (!known || head.length < HEAD_BYTES))) {
    return new HeadView(head, head.length, true);
  }
  const reach = Math.min(HEAD_BYTES, known ? size : Infinity);
  return new HeadView(head, Math.max(head.length, reach), false);
}
