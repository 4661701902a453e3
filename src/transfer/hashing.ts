import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { FileHashes } from '../state/upload-record.js';

export interface Hashing {
  /** The file's hashes once all `size` bytes were read. */
  result: Promise<FileHashes>;
  /** Stop hashing (the push was given up); `result` then rejects. */
  abort(): void;
}

const WORKER = new URL('./hash-worker.mjs', import.meta.url);

/**
 * Hash the first `size` bytes of a data file in a worker thread, following the file while it grows:
 * MD5 and SHA-512 cost about as much CPU as the transfer itself, and the event loop has network to serve.
 * The worker gives up when the file does not grow for `stallMs`.
 */
export function hashFile(file: string, size: number, stallMs = Infinity): Hashing {
  // The worker only streams through a file: a small heap keeps each push's thread cheap.
  const worker = new Worker(WORKER, {
    workerData: { file, size, stallMs },
    resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
  });
  const result = new Promise<FileHashes>((resolve, reject) => {
    worker.once('message', (answer: FileHashes | { stalled: true }) =>
      'stalled' in answer ? reject(new Error('hashing stopped: the file stopped growing')) : resolve(answer),
    );
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`hashing stopped (worker exit ${code})`)));
  });
  result.catch(() => undefined); // a given-up push never reads it
  return { result, abort: () => void worker.terminate() };
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
