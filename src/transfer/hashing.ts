import { createHash, getHashes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DEFAULT_ALGO, opensslName } from '../glance/multihash.js';
import type { ContentHash } from '../state/upload-record.js';
import type { FollowOptions, StoredFiles } from './stored-files.js';

export { DEFAULT_ALGO };

export interface Hashing {
  /** Glance's name of the algorithm (`os_hash_algo`). */
  algo: string;
  /** The digest once all `size` bytes were read. */
  result: Promise<ContentHash>;
  /** Stop hashing (the push was given up); `result` then rejects. */
  abort(): void;
}

/** Bytes hashed per read: long enough to cost little per call, short enough (1 ms) not to hold up the event loop. */
const CHUNK = 1 << 20;

/** Whether this process can compute Glance's `algo`. */
export function canHash(algo: string): boolean {
  return getHashes().includes(opensslName(algo));
}

/**
 * Hash the first `size` bytes of a stored upload, following it while it grows (data only grows,
 * so these are the bytes pushed). It runs on the event loop, one 1 MiB read at a time into one
 * buffer: a worker thread would cost a second V8 isolate (11 MiB) for work Glance outlasts anyway
 * (SHA-512 costs the gateway 1.2 CPU-s/GiB, Glance about 5). Gives up when the upload does not
 * grow for `stallMs`, or grows slower than `minRate` bytes a second over that window.
 */
export function hashStored(
  files: Pick<StoredFiles, 'followInto'>,
  uploadId: string,
  size: number,
  algo: string,
  { stallMs = Infinity, minRate = 0 }: { stallMs?: number; minRate?: number } = {},
): Hashing {
  const stop = new AbortController();
  const follow = { size, stallMs, minRate, signal: stop.signal };
  const result = digest(files, uploadId, opensslName(algo), follow).then((value) => ({ algo, value }));
  result.catch(() => undefined); // a given-up push never reads it
  return { algo, result, abort: () => stop.abort(new Error('hashing stopped: the push was given up')) };
}

async function digest(files: Pick<StoredFiles, 'followInto'>, uploadId: string, algorithm: string, follow: FollowOptions): Promise<string> {
  const hash = createHash(algorithm);
  const buffer = Buffer.allocUnsafeSlow(CHUNK);
  for await (const chunk of files.followInto(uploadId, buffer, follow)) hash.update(chunk);
  return hash.digest('hex');
}

/** Counts the bytes passing through, for the push's progress. */
export class ByteCounter extends Transform {
  bytes = 0;

  constructor(private readonly onBytes: (total: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes(this.bytes);
    callback(null, chunk);
  }
}
