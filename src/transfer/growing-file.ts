import fsp, { type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export class StreamStalledError extends Error {
  override name = 'StreamStalledError';
}

export interface GrowingFileOptions {
  /** Total bytes the file will hold; reading ends there. */
  size: number;
  /** How many bytes may be read so far (the push holds back the end until the upload is complete). */
  allowed?: () => number;
  /** Give up when the file has not grown for this long. */
  stallMs: number;
  /** Stops a wait for bytes at once; reads then fail with the signal's reason. */
  signal?: AbortSignal;
}

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

  private constructor(
    private readonly handle: FileHandle,
    private readonly opts: GrowingFileOptions,
  ) {}

  static async open(file: string, opts: GrowingFileOptions): Promise<GrowingFile> {
    return new GrowingFile(await fsp.open(file, 'r'), opts);
  }

  /**
   * The next bytes, read into the buffer `into` gives for the count available (at most that
   * many are read); null once `size` bytes were read.
   */
  async next(into: (available: number) => Buffer): Promise<Buffer | null> {
    const { size, allowed, stallMs, signal } = this.opts;
    while (this.#position < size) {
      signal?.throwIfAborted();
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

  close(): Promise<void> {
    return this.handle.close();
  }
}

const READ_CHUNK = 1 << 20;

/** A GrowingFile as a stream, for the push's body. */
export class GrowingFileReader extends Readable {
  #file: GrowingFile | undefined;
  readonly #stop = new AbortController();
  stalled = false;

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
        this.stalled = err instanceof StreamStalledError;
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
