import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FileHashes } from '../state/upload-record.js';

/** Passes bytes through unchanged while computing Glance's two hashes (MD5 `checksum`, SHA-512 `os_hash_value`). */
export class HashingStream extends Transform {
  readonly #md5: Hash = createHash('md5');
  readonly #sha512: Hash = createHash('sha512');
  bytes = 0;

  constructor(private readonly onBytes?: (total: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.#md5.update(chunk);
    this.#sha512.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    callback(null, chunk);
  }

  /** Only valid once the stream has ended. */
  digest(): FileHashes {
    return { md5: this.#md5.digest('hex'), sha512: this.#sha512.digest('hex') };
  }
}

export async function hashFile(file: string): Promise<FileHashes> {
  const hasher = new HashingStream();
  await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 20 }), hasher, async (source) => {
    for await (const _ of source); // drain: the hasher only needs to see the bytes
  });
  return hasher.digest();
}
