import fsp, { type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

export class StreamStalledError extends Error {
  override name = 'StreamStalledError';
}

export interface GrowingFileOptions {
  /** Total bytes the file will hold; the stream ends there. */
  size: number;
  /** How many bytes may be sent so far (the push holds back the end until the upload is complete). */
  allowed: () => number;
  /** Give up when the file has not grown for this long. */
  stallMs: number;
  pollMs?: number;
}

const READ_CHUNK = 1 << 20;

/**
 * Reads a file that is still being written: at the end of what is there it waits for more,
 * and fails with StreamStalledError when nothing new arrives for `stallMs`.
 */
export class GrowingFileReader extends Readable {
  #handle: FileHandle | undefined;
  #position = 0;
  /** Bytes known to be in the file: it is looked at again only when they are used up. */
  #known = 0;
  #lastProgress = Date.now();
  stalled = false;

  constructor(
    private readonly file: string,
    private readonly opts: GrowingFileOptions,
  ) {
    super({ highWaterMark: READ_CHUNK });
  }

  override _construct(callback: (err?: Error | null) => void): void {
    fsp.open(this.file, 'r').then((handle) => {
      this.#handle = handle;
      callback();
    }, callback);
  }

  override _read(): void {
    this.#next().catch((err: Error) => this.destroy(err));
  }

  async #next(): Promise<void> {
    const handle = this.#handle!;
    const { size, allowed, stallMs, pollMs = 20 } = this.opts;
    while (!this.destroyed) {
      if (this.#position >= size) {
        this.push(null);
        return;
      }
      if (this.#position >= this.#known) this.#known = (await handle.stat()).size;
      const limit = Math.min(size, allowed(), this.#known);
      if (limit > this.#position) {
        const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, limit - this.#position));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.#position);
        if (bytesRead > 0) {
          this.#position += bytesRead;
          this.#lastProgress = Date.now();
          this.push(buffer.subarray(0, bytesRead));
          return;
        }
        this.#known = this.#position; // less than the size said: wait, then look again
      }
      if (Date.now() - this.#lastProgress > stallMs) {
        this.stalled = true;
        throw new StreamStalledError(`no new bytes for ${stallMs} ms`);
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = undefined;
    if (!handle) return callback(err);
    handle.close().then(
      () => callback(err),
      () => callback(err),
    );
  }
}
