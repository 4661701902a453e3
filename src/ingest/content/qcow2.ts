import type { HeadView } from './head-view.js';
import { needMore, ok, reject, type Verdict } from './verdict.js';
import { u32be, u64be } from './bytes.js';

// Header offsets (docs/interop/qcow2.txt in qemu).
const VERSION = 4;
const BACKING_FILE_OFFSET = 8;
const CLUSTER_BITS = 20;
const V2_HEADER_LENGTH = 72;
const INCOMPATIBLE_FEATURES = 72;
const HEADER_LENGTH = 100;
const V3_MIN_HEADER_LENGTH = 104;
const INCOMPAT_DATA_FILE = 1n << 2n;
/** dirty, corrupt, external data file, compression type: what Glance's inspector knows. */
const INCOMPAT_KNOWN = 0xfn;
const EXT_END = 0;
const EXT_DATA_FILE = 0x44415441; // "DATA"

/** qcow (v1) shares the QFI\xfb magic; name it properly in reasons. */
export function qcowName(v: HeadView): 'qcow' | 'qcow2' {
  return v.has(VERSION + 4) === true && u32be(v.buf, VERSION) === 1 ? 'qcow' : 'qcow2';
}

/** null when bytes [0, end) are here; otherwise wait, or reject if they never will be. */
function missing(v: HeadView, end: number, reason = 'qcow2 header is truncated'): Verdict | null {
  const h = v.has(end);
  return h === true ? null : h === 'short' ? needMore() : reject(reason);
}

/**
 * Refuse what makes qemu open other host files: a backing file or an external
 * data file; and incompatible features Glance's inspector does not know.
 * Called only once the QFI\xfb magic is known to be present.
 */
export function checkQcow2(v: HeadView): Verdict {
  const b = v.buf;
  let m: Verdict | null;
  if ((m = missing(v, VERSION + 4))) return m;
  const version = u32be(b, VERSION);
  if (version === 1) return reject('data is qcow (version 1), not qcow2');
  if (version !== 2 && version !== 3) return reject(`unsupported qcow2 version ${version}`);

  if ((m = missing(v, BACKING_FILE_OFFSET + 8))) return m;
  if (u64be(b, BACKING_FILE_OFFSET) !== 0n) return reject('qcow2 image has a backing file');

  if ((m = missing(v, CLUSTER_BITS + 4))) return m;
  const clusterBits = u32be(b, CLUSTER_BITS);
  if (clusterBits < 9 || clusterBits > 21) return reject(`invalid qcow2 header (cluster_bits ${clusterBits})`);
  const clusterSize = 2 ** clusterBits;

  let headerLength = V2_HEADER_LENGTH;
  if (version === 3) {
    if ((m = missing(v, INCOMPATIBLE_FEATURES + 8))) return m;
    const incompatible = u64be(b, INCOMPATIBLE_FEATURES);
    if (incompatible & INCOMPAT_DATA_FILE) return reject('qcow2 image uses an external data file');
    // A feature not known here may change how the image is read; refuse rather than guess.
    const unknown = incompatible & ~INCOMPAT_KNOWN;
    if (unknown) return reject(`qcow2 image uses unknown incompatible features (0x${unknown.toString(16)})`);
    if ((m = missing(v, HEADER_LENGTH + 4))) return m;
    headerLength = u32be(b, HEADER_LENGTH);
    if (headerLength < V3_MIN_HEADER_LENGTH || headerLength > clusterSize) {
      return reject(`invalid qcow2 header (header_length ${headerLength})`);
    }
  }
  return checkExtensions(v, headerLength, clusterSize);
}

/** Walk header extensions as qemu does: from header_length up to the end of the first cluster. */
function checkExtensions(v: HeadView, start: number, end: number): Verdict {
  const b = v.buf;
  let off = start;
  while (off < end) {
    const m = missing(v, off + 8, 'qcow2 header extensions are truncated or too long to inspect');
    if (m) return m;
    const type = u32be(b, off);
    const len = u32be(b, off + 4);
    off += 8;
    if (off > end || len > end - off) return reject('invalid qcow2 header extension (too large)');
    if (type === EXT_END) return ok();
    if (type === EXT_DATA_FILE) return reject('qcow2 image uses an external data file');
    off += Math.ceil(len / 8) * 8;
  }
  return ok();
}
