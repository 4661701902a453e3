import { getHashes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { ContentHash } from '../state/upload-record.js';

export interface Hashing {
  /** Glance's name of the algorithm (`os_hash_algo`). */
  algo: string;
  /** The digest once all `size` bytes were read. */
  result: Promise<ContentHash>;
  /** Stop hashing (the push was given up); `result` then rejects. */
  abort(): void;
}

/** Glance's default `hashing_algorithm`, used until a Glance shows another one. */
export const DEFAULT_ALGO = 'sha512';

/** The niceness of hashing threads: the lowest, so that moving bytes always comes first. */
const HASH_NICE = 19;
const WORKER = new URL('./hash-worker.mjs', import.meta.url);

/** Glance names algorithms as Python's hashlib does; OpenSSL names a few of them otherwise. */
const OPENSSL_NAMES: Record<string, string> = {
  sha3_224: 'sha3-224',
  sha3_256: 'sha3-256',
  sha3_384: 'sha3-384',
  sha3_512: 'sha3-512',
  blake2b: 'blake2b512',
  blake2s: 'blake2s256',
};

const opensslName = (algo: string): string => OPENSSL_NAMES[algo] ?? algo;

/** Whether this process can compute Glance's `algo`. */
export function canHash(algo: string): boolean {
  return getHashes().includes(opensslName(algo));
}

/**
 * Hash the first `size` bytes of a data file in a worker thread, following the file while it grows.
 * A digest costs about 2 CPU-s/GiB: it runs beside the event loop, at the lowest priority.
 * The worker gives up when the file does not grow for `stallMs`.
 */
export function hashFile(file: string, size: number, algo: string, stallMs = Infinity): Hashing {
  // The worker only streams through a file: a small heap keeps each push's thread cheap.
  const worker = new Worker(WORKER, {
    workerData: { file, size, algorithm: opensslName(algo), stallMs, nice: HASH_NICE },
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 },
  });
  const result = new Promise<ContentHash>((resolve, reject) => {
    worker.once('message', (answer: { value: string } | { stalled: true }) =>
      'stalled' in answer ? reject(new Error('hashing stopped: the file stopped growing')) : resolve({ algo, value: answer.value }),
    );
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`hashing stopped (worker exit ${code})`)));
  });
  result.catch(() => undefined); // a given-up push never reads it
  return { algo, result, abort: () => void worker.terminate() };
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
