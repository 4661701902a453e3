import fsp, { type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { StreamStalledError, type FollowOptions, type FollowStream } from '../transfer/stored-files.js';

export { StreamStalledError };
export type GrowingFileOptions = FollowOptions;

/** How often to look again at a file that is still being written. */
const POLL_MS = 20;

/**
 * A data file that is still being written (data files only grow): each read waits for bytes not
 * there yet, and fails with StreamStalledError when nothing new arrives for `stallMs`.
 */
export class GrowingFile {
  #position = 0;
  /** Bytes known to be in the file: it is looked at again only when they are used up. */
  #known = 0;
  #lastProgress = Date.now();
  /** The window `minRate` is measured over: when it started, and the file's size then. */
  #windowAt = Date.now();
  #windowSize: number;

  private constructor(
    private readonly handle: FileHandle,
    private readonly opts: GrowingFileOptions,
    size: number,
  ) {
    this.#known = this.#windowSize = size;
  }

  static async open(file: string, opts: GrowingFileOptions): Promise<GrowingFile> {
    const handle = await fsp.open(file, 'r');
    try {
      return new GrowingFile(handle, opts, (await handle.stat()).size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /**
   * The next bytes, read into the buffer `into` gives for the count available (at most that
   * many are read); null once `size` bytes were read.
   */
  async next(into: (available: number) => Buffer): Promise<Buffer | null> {
    const { size, allowed, stallMs, signal } = this.opts;
    while (this.#position < size) {
      signal?.throwIfAborted();
      if (this.opts.minRate && Date.now() - this.#windowAt >= stallMs) await this.#checkRate();
      if (this.#position >= this.#known) this.#known = (await this.handle.stat()).size;
      const limit = Math.min(size, allowed?.() ?? size, this.#known);
      if (limit > this.#position) {
        const buffer = into(limit - this.#position);
        const length = Math.min(buffer.length, limit - this.#position);
        const { bytesRead } = await this.handle.read(buffer, 0, length, this.#position);
        if (bytesRead > 0) {
          this.#position += bytesRead;
          this.#lastProgress = Date.now();
          return buffer.subarray(0, bytesRead);
        }
        this.#known = this.#position; // less than the size said: wait, then look again
      }
      if (Date.now() - this.#lastProgress > stallMs) throw new StreamStalledError(`the file stopped growing: no new bytes for ${stallMs} ms`);
      await sleep(POLL_MS, undefined, { signal }).catch(() => signal?.throwIfAborted());
    }
    return null;
  }

  /**
   * Once a window: a file that grows, but too slowly to be worth a push slot, counts as stalled.
   * A complete file has nothing left to wait for.
   */
  async #checkRate(): Promise<void> {
    const { size, minRate = 0 } = this.opts;
    this.#known = (await this.handle.stat()).size;
    const now = Date.now();
    const elapsed = now - this.#windowAt;
    const grown = this.#known - this.#windowSize;
    if (this.#known < size && grown * 1000 < minRate * elapsed) {
      const rate = Math.round((grown * 1000) / elapsed);
      throw new StreamStalledError(`the file grew by ${rate} bytes/s over ${elapsed} ms, below ${minRate} bytes/s`);
    }
    this.#windowAt = now;
    this.#windowSize = this.#known;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** A growing file's bytes, each read into `buffer`: a chunk is a view of it, valid until the next. */
export async function* followFileInto(file: string, buffer: Buffer, opts: GrowingFileOptions): AsyncGenerator<Buffer> {
  const growing = await GrowingFile.open(file, opts);
  try {
    for (let chunk; (chunk = await growing.next(() => buffer)); ) yield chunk;
  } finally {
    await growing.close();
  }
}

const READ_CHUNK = 1 << 20;

/** A GrowingFile as a stream, for the push's body. */
export class GrowingFileReader extends Readable implements FollowStream {
  #file: GrowingFile | undefined;
  readonly #stop = new AbortController();
  /** Why the file was given up as stalled, if it was. */
  stalled: string | undefined;

  constructor(
    private readonly path: string,
    private readonly opts: GrowingFileOptions,
  ) {
    super({ highWaterMark: READ_CHUNK });
  }

  override _construct(callback: (err?: Error | null) => void): void {
    GrowingFile.open(this.path, { ...this.opts, signal: this.#stop.signal }).then((file) => {
      this.#file = file;
      callback();
    }, callback);
  }

  override _read(): void {
    // Each read gets its own buffer: it travels on to the socket.
    this.#file!.next((available) => Buffer.allocUnsafe(Math.min(READ_CHUNK, available))).then(
      (chunk) => this.push(chunk),
      (err: Error) => {
        if (err instanceof StreamStalledError) this.stalled = err.message;
        this.destroy(err);
      },
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#stop.abort();
    const file = this.#file;
    this.#file = undefined;
    if (!file) return callback(err);
    file.close().then(
      () => callback(err),
      () => callback(err),
    );
  }
}
