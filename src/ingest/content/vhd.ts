import { ok, reject, type Verdict } from './verdict.js';

export const CONECTIX = Buffer.from('conectix', 'latin1');
export const FOOTER_BYTES = 512;

/** A fixed VHD is raw data plus a 512-byte footer starting with `conectix`. */
export function checkFooter(tail: Buffer): Verdict {
  if (tail.length < FOOTER_BYTES) return reject('data is not vhd (too short for a conectix footer)');
  const footer = tail.subarray(tail.length - FOOTER_BYTES);
  return footer.subarray(0, CONECTIX.length).equals(CONECTIX)
    ? ok()
    : reject('data is not vhd (no conectix footer)');
}
