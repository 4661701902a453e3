import type { HeadView } from './head-view.js';
import { needMore, ok, reject, type Verdict } from './verdict.js';

export const CONECTIX = Buffer.from('conectix', 'latin1');
export const FOOTER_BYTES = 512;
const DISK_TYPE = 60; // big-endian uint32 in the footer
const DIFFERENCING = 4;

const differencing = () => reject('vhd is a differencing disk: it has a parent');

/** A dynamic or differencing VHD starts with a copy of its footer. */
export function checkVhdHead(v: HeadView): Verdict {
  const h = v.has(DISK_TYPE + 4);
  if (h !== true) return h === 'short' ? needMore() : reject('vhd footer is truncated');
  return v.buf.readUInt32BE(DISK_TYPE) === DIFFERENCING ? differencing() : ok();
}

/** A fixed VHD is raw data plus a 512-byte footer starting with `conectix`. */
export function checkFooter(tail: Buffer): Verdict {
  if (tail.length < FOOTER_BYTES) return reject('data is not vhd (too short for a conectix footer)');
  const footer = tail.subarray(tail.length - FOOTER_BYTES);
  if (!footer.subarray(0, CONECTIX.length).equals(CONECTIX)) return reject('data is not vhd (no conectix footer)');
  return footer.readUInt32BE(DISK_TYPE) === DIFFERENCING ? differencing() : ok();
}

/** A dynamic VHD's head copy has an original at the end, which is what some readers use. */
export function checkFooterCopy(tail: Buffer): Verdict {
  const footer = tail.subarray(-FOOTER_BYTES);
  const isFooter = footer.length === FOOTER_BYTES && footer.subarray(0, CONECTIX.length).equals(CONECTIX);
  return isFooter && footer.readUInt32BE(DISK_TYPE) === DIFFERENCING ? differencing() : ok();
}
