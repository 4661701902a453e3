import type { HeadView } from './head-view.js';
import { needMore, ok, reject, type Verdict } from './verdict.js';
import { equal, latin1, u32be } from './bytes.js';

export const CONECTIX = latin1('conectix');
export const FOOTER_BYTES = 512;
const DISK_TYPE = 60; // big-endian uint32 in the footer
const DIFFERENCING = 4;

const differencing = () => reject('vhd is a differencing disk: it has a parent');

/** A dynamic or differencing VHD starts with a copy of its footer. */
export function checkVhdHead(v: HeadView): Verdict {
  const h = v.has(DISK_TYPE + 4);
  if (h !== true) return h === 'short' ? needMore() : reject('vhd footer is truncated');
  return u32be(v.buf, DISK_TYPE) === DIFFERENCING ? differencing() : ok();
}

/** A fixed VHD is raw data plus a 512-byte footer starting with `conectix`. */
export function checkFooter(tail: Uint8Array): Verdict {
  if (tail.length < FOOTER_BYTES) return reject('data is not vhd (too short for a conectix footer)');
  const footer = tail.subarray(tail.length - FOOTER_BYTES);
  if (!equal(footer.subarray(0, CONECTIX.length), CONECTIX)) return reject('data is not vhd (no conectix footer)');
  return u32be(footer, DISK_TYPE) === DIFFERENCING ? differencing() : ok();
}

/** A dynamic VHD's head copy has an original at the end, which is what some readers use. */
export function checkFooterCopy(tail: Uint8Array): Verdict {
  const footer = tail.subarray(-FOOTER_BYTES);
  const isFooter = footer.length === FOOTER_BYTES && equal(footer.subarray(0, CONECTIX.length), CONECTIX);
  return isFooter && u32be(footer, DISK_TYPE) === DIFFERENCING ? differencing() : ok();
}
