import { createHash, getHashes } from 'node:crypto';
import fsp from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
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

/** Bytes hashed per read: long enough to cost little per call, short enough (1 ms) not to hold up the event loop. */
const CHUNK = 1 << 20;
/** How often to look again at a file that is still being written. */
const POLL_MS = 20;

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
 * Hash the first `size` bytes of a data file, following the file while it grows (data files only
 * grow, so these are the bytes pushed). It runs on the event loop, one 1 MiB read at a time into
 * one buffer: a worker thread would cost a second V8 isolate (11 MiB) for work Glance outlasts
 * anyway (SHA-512 costs the gateway 1.2 CPU-s/GiB, Glance about 5). Gives up when the file does
 * not grow for `stallMs`.
 */
export function hashFile(file: string, size: number, algo: string, stallMs = Infinity): Hashing {
  const stop = new AbortController();
  const result = digestFile(file, size, opensslName(algo), stallMs, stop.signal).then((value) => ({ algo, value }));
  result.catch(() => undefined); // a given-up push never reads it
  return { algo, result, abort: () => stop.abort(new Error('hashing stopped: the push was given up')) };
}

async function digestFile(file: string, size: number, algorithm: string, stallMs: number, signal: AbortSignal): Promise<string> {
  const hash = createHash(algorithm);
  const buffer = Buffer.allocUnsafeSlow(CHUNK);
  const handle = await fsp.open(file, 'r');
  try {
    let lastProgress = Date.now();
    let known = 0; // bytes known to be in the file: stat only when they are used up
    for (let position = 0; position < size; ) {
      signal.throwIfAborted();
      if (position >= known) known = Math.min(size, (await handle.stat()).size);
      const { bytesRead } = position < known ? await handle.read(buffer, 0, Math.min(CHUNK, known - position), position) : { bytesRead: 0 };
      if (bytesRead > 0) {
        lastProgress = Date.now();
        hash.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
        continue;
      }
      known = position; // nothing new yet (or less than the size said): wait, then look again
      if (Date.now() - lastProgress > stallMs) throw new Error('hashing stopped: the file stopped growing');
      await sleep(POLL_MS, undefined, { signal }).catch(() => signal.throwIfAborted());
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
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
