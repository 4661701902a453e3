import { createHash, getHashes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { ContentHash } from '../state/upload-record.js';
import { GrowingFile } from './growing-file.js';

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

async function digestFile(path: string, size: number, algorithm: string, stallMs: number, signal: AbortSignal): Promise<string> {
  const hash = createHash(algorithm);
  const buffer = Buffer.allocUnsafeSlow(CHUNK);
  const file = await GrowingFile.open(path, { size, stallMs, signal });
  try {
    for (let chunk; (chunk = await file.next(() => buffer)); ) hash.update(chunk);
    return hash.digest('hex');
  } finally {
    await file.close();
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
