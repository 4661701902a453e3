import type { Readable } from 'node:stream';

/** A followed upload stopped growing (or grew too slowly) while its bytes were awaited. */
export class StreamStalledError extends Error {
  override name = 'StreamStalledError';
}

export interface FollowOptions {
  /** Total bytes the upload will hold; reading ends there. */
  size: number;
  /** How many bytes may be read so far (the push holds back the end until the upload is complete). */
  allowed?: () => number;
  /** Give up with StreamStalledError when no byte arrived for this long. */
  stallMs: number;
  /** Give up too when the upload grew slower than this (bytes a second) over a `stallMs` window. */
  minRate?: number;
  /** Stops a wait for bytes at once; reads then fail with the signal's reason. */
  signal?: AbortSignal;
}

/** A followed upload as a stream; `stalled` says why it was given up, if it stalled. */
export interface FollowStream extends Readable {
  readonly stalled: string | undefined;
}

/**
 * What the transfer layer needs of stored uploads: their bytes as streams, never where they
 * live. Uploads are addressed by id; data only grows until the upload is complete.
 */
export interface StoredFiles {
  /** Bytes [start, end) as stored now (default: all of them); each chunk is a buffer of its own. */
  read(uploadId: string, range?: { start?: number; end?: number }): Readable;
  /** Bytes [0, size), waiting for those not stored yet. Each chunk is a buffer of its own (it may travel on to a socket). */
  follow(uploadId: string, opts: FollowOptions): FollowStream;
  /**
   * The same bytes as `follow`, each read into `buffer`: a yielded chunk is a view of it, valid
   * until the next one is asked for. One buffer for the whole file keeps a digest's memory flat.
   */
  followInto(uploadId: string, buffer: Buffer, opts: FollowOptions): AsyncIterable<Buffer>;
  /** Bytes stored so far (the tus offset). */
  offset(uploadId: string): Promise<number>;
  /** Free the space of a pushed upload while keeping its tus offset. */
  release(uploadId: string): Promise<void>;
  /** Bytes that can still be stored (what storage reservations may promise). */
  capacity(): Promise<number>;
}
