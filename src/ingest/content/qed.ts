import type { HeadView } from './head-view.js';
import { needMore, ok, reject, type Verdict } from './verdict.js';
import { u64le } from './bytes.js';

// Header fields (little-endian; docs/interop/qed_spec in qemu).
const FEATURES = 16;
const F_BACKING_FILE = 0x01n;
const F_NEED_CHECK = 0x02n;
const F_BACKING_FORMAT_NO_PROBE = 0x04n;
const KNOWN_FEATURES = F_BACKING_FILE | F_NEED_CHECK | F_BACKING_FORMAT_NO_PROBE;

/** A backing file makes qemu open another host file; features qemu does not know change how it reads the image. */
export function checkQed(v: HeadView): Verdict {
  const h = v.has(FEATURES + 8);
  if (h !== true) return h === 'short' ? needMore() : reject('qed header is truncated');
  const features = u64le(v.buf, FEATURES);
  if (features & F_BACKING_FILE) return reject('qed image has a backing file');
  const unknown = features & ~KNOWN_FEATURES;
  if (unknown) return reject(`qed image uses unknown features (0x${unknown.toString(16)})`);
  return ok();
}
