import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { ContentMismatchError } from '../errors.js';
import { HEAD_BYTES, inspectHead, inspectStored, inspectStoredSoFar, readsPastHead, type Verdict } from './content/inspect.js';

export interface GuardedUpload {
  diskFormat: string;
  size: number;
}

export interface ContentGuardDeps {
  /** What the upload claims to be; undefined lets the bytes through unchecked. */
  describe(uploadId: string): Promise<GuardedUpload | undefined>;
  readRange(uploadId: string, start: number, length: number): Promise<Buffer>;
  /** Remove a refused upload so that no client resumes it. */
  discard(uploadId: string): Promise<void>;
}

/**
 * Matches the first bytes of an upload against its disk_format before they reach
 * the disk, and the whole file once it is complete (a fixed VHD's footer, a VHDX's
 * metadata, which lie past the head).
 */
export class ContentGuard {
  /** Uploads whose checks past the head have passed: nothing more to read for them until finish. */
  readonly #passed = new Set<string>();

  constructor(private readonly deps: ContentGuardDeps) {}

  /**
   * Wrap a store write: bytes are held back until the head is judged, so refused data is never
   * stored; checks that read past the head run as soon as their bytes are stored.
   */
  async write(uploadId: string, readable: Readable, offset: number, write: (r: Readable) => Promise<number>): Promise<number> {
    const stored = offset >= HEAD_BYTES ? await write(readable) : await this.#gated(uploadId, readable, offset, write);
    return this.#pastHead(uploadId, stored);
  }

  async #gated(uploadId: string, readable: Readable, offset: number, write: (r: Readable) => Promise<number>): Promise<number> {
    const upload = await this.deps.describe(uploadId);
    if (!upload) return write(readable);

    const stored = offset > 0 ? await this.deps.readRange(uploadId, 0, offset) : Buffer.alloc(0);
    const gate = new HeadGate(upload, stored);
    try {
      // pipe (not pipeline): a refusal must leave the request stream to tus, which then answers our 415.
      // pipe does not carry the source's errors (a body over the limit): the gate must end with them.
      readable.once('error', (err) => gate.destroy(err));
      return await write(readable.pipe(gate));
    } catch (err) {
      // The reason the write stopped is the gate's, when it refused.
      if (!gate.rejection) throw err;
      await this.deps.discard(uploadId);
      throw gate.rejection;
    }
  }

  /** A refusal here comes after the bytes were stored: the client learns before sending the rest. */
  async #pastHead(uploadId: string, stored: number): Promise<number> {
    if (stored <= HEAD_BYTES || this.#passed.has(uploadId)) return stored;
    const upload = await this.deps.describe(uploadId);
    // A complete upload is judged whole by finish, which tus calls next.
    if (!upload || stored >= upload.size || !readsPastHead(upload.diskFormat)) return stored;
    const read = (start: number, length: number) => this.deps.readRange(uploadId, start, length);
    // finish checks again in any case: a failure to read here only loses the early answer.
    const verdict = await inspectStoredSoFar(upload.diskFormat, upload.size, stored, read).catch(() => undefined);
    if (verdict?.kind === 'reject') {
      await this.deps.discard(uploadId);
      throw mismatch(verdict.reason);
    }
    if (verdict?.kind === 'ok') this.#passed.add(uploadId);
    return stored;
  }

  /** The upload is gone: nothing to remember about it. */
  forget(uploadId: string): void {
    this.#passed.delete(uploadId);
  }

  /** The check that needs the whole file; throws ContentMismatchError after discarding the upload. */
  async finish(uploadId: string): Promise<void> {
    this.#passed.delete(uploadId);
    const upload = await this.deps.describe(uploadId);
    if (!upload) return;
    const verdict = await inspectStored(upload.diskFormat, upload.size, (start, length) =>
      this.deps.readRange(uploadId, start, length),
    );
    if (verdict.kind === 'reject') {
      await this.deps.discard(uploadId);
      throw mismatch(verdict.reason);
    }
  }
}

/** Holds bytes back until the head can be judged, then lets everything through. */
class HeadGate extends Transform {
  rejection: ContentMismatchError | undefined;
  #held: Buffer[] = [];
  #seen: number;
  #decided = false;

  constructor(
    private readonly upload: GuardedUpload,
    private readonly stored: Buffer,
  ) {
    super();
    this.#seen = stored.length;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (this.#decided) return callback(null, chunk);
    this.#held.push(chunk);
    this.#seen += chunk.length;
    const head = Buffer.concat([this.stored, ...this.#held]).subarray(0, HEAD_BYTES);
    const verdict: Verdict = inspectHead(this.upload.diskFormat, head, this.upload.size, this.#seen >= this.upload.size);
    if (verdict.kind === 'reject') {
      this.rejection = mismatch(verdict.reason);
      return callback(this.rejection);
    }
    if (verdict.kind === 'ok') {
      this.#decided = true;
      this.#release();
    }
    callback();
  }

  // Ended before a verdict: what came is consistent so far, and the next request continues the check.
  override _flush(callback: TransformCallback): void {
    this.#release();
    callback();
  }

  #release(): void {
    for (const chunk of this.#held) this.push(chunk);
    this.#held = [];
  }
}

function mismatch(reason: string): ContentMismatchError {
  return new ContentMismatchError(`content does not match disk_format: ${reason}`);
}
