import type { Image } from '../glance/image.js';
import type { FileHashes } from '../state/upload-record.js';

export type ImageVerdict =
  | { kind: 'push' } // queued: the data can be sent
  | { kind: 'wait'; why: string } // another transfer is in flight (saving, importing): look again later
  | { kind: 'done' } // active with exactly our bytes
  | { kind: 'fail'; code: string; message: string };

/** Does an active image hold exactly our file? Checks every hash Glance reports. */
export function holdsOurBytes(image: Image, size: number, hashes: FileHashes): string | null {
  if (image.size !== size) return `Glance holds ${image.size} bytes, the upload has ${size}`;
  if (image.checksum !== null && image.checksum !== hashes.md5) return `Glance checksum ${image.checksum} differs from ${hashes.md5}`;
  if (image.os_hash_algo === 'sha512' && image.os_hash_value !== hashes.sha512) return 'Glance os_hash_value (sha512) differs';
  if (image.checksum === null && image.os_hash_algo !== 'sha512') return 'Glance reports no hash to compare';
  return null;
}

/**
 * What to do given the image as Glance shows it now. `hashes` may be loaded lazily,
 * since only an already-active image needs them.
 */
export async function judgeImage(image: Image, size: number, hashes: () => Promise<FileHashes>): Promise<ImageVerdict> {
  switch (image.status) {
    case 'queued':
      return { kind: 'push' };
    case 'saving':
    case 'importing':
    case 'uploading':
      return { kind: 'wait', why: `image is ${image.status}` };
    case 'active': {
      const mismatch = holdsOurBytes(image, size, await hashes());
      return mismatch === null
        ? { kind: 'done' }
        : { kind: 'fail', code: 'image_active_elsewhere', message: `image is already active with other data: ${mismatch}` };
    }
    default:
      return { kind: 'fail', code: 'image_unusable', message: `image is ${image.status}` };
  }
}
