import type { Image } from '../glance/image.js';
import type { PushErrorCode } from '../error-codes.js';
import type { ContentHash } from '../state/upload-record.js';
import { canHash } from './hashing.js';

export type ImageVerdict =
  | { kind: 'push' } // queued: the data can be sent
  | { kind: 'wait'; why: string } // another transfer is in flight (saving, importing): look again later
  | { kind: 'done' } // active with exactly our bytes
  | { kind: 'fail'; code: PushErrorCode; message: string };

/** Computes the stored file's digest in the algorithm asked for. */
export type HashOf = (algo: string) => Promise<ContentHash>;

/**
 * The digest that proves what an image holds: its multihash (`os_hash_algo`, SHA-512 unless the
 * deployment chose another), or the MD5 `checksum` of a Glance older than Rocky. Glance deprecated
 * `checksum` for the multihash, and FIPS deployments may not fill it in: once the secure digest and
 * the size match, MD5 adds nothing.
 */
export function glanceDigest(image: Image): ContentHash | null {
  if (image.os_hash_algo && image.os_hash_value) return { algo: image.os_hash_algo, value: image.os_hash_value };
  if (image.checksum) return { algo: 'md5', value: image.checksum };
  return null;
}

/** Does an active image hold exactly our file? null if so, else why not. */
export async function holdsOurBytes(image: Image, size: number, hashOf: HashOf): Promise<string | null> {
  if (image.size !== size) return `Glance holds ${image.size} bytes, the upload has ${size}`;
  const theirs = glanceDigest(image);
  if (!theirs) return 'Glance reports no hash to compare';
  if (!canHash(theirs.algo)) return `Glance hashes with ${theirs.algo}, which this gateway cannot compute`;
  const ours = await hashOf(theirs.algo);
  if (ours.value !== theirs.value) return `Glance's ${theirs.algo} ${theirs.value} differs from the upload's ${ours.value}`;
  return null;
}

/** What to do given the image as Glance shows it now. Only an already-active image needs a digest. */
export async function judgeImage(image: Image, size: number, hashOf: HashOf): Promise<ImageVerdict> {
  switch (image.status) {
    case 'queued':
      return { kind: 'push' };
    case 'saving':
    case 'importing':
    case 'uploading':
      return { kind: 'wait', why: `image is ${image.status}` };
    case 'active': {
      const mismatch = await holdsOurBytes(image, size, hashOf);
      return mismatch === null
        ? { kind: 'done' }
        : { kind: 'fail', code: 'image_active_elsewhere', message: `image is already active with other data: ${mismatch}` };
    }
    default:
      return { kind: 'fail', code: 'image_unusable', message: `image is ${image.status}` };
  }
}
