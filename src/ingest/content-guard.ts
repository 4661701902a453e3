import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { ContentMismatchError } from '../errors.js';
import { HEAD_BYTES, inspectHead, inspectTail, needsTail, TAIL_BYTES, type Verdict } from './content/inspect.js';

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
 * the disk, and the last bytes once it is complete (a fixed VHD's footer).
 */
export class ContentGuard {
  constructor(private readonly deps: ContentGuardDeps) {}

  /** Wrap a store write: bytes are held back until the head is judged, so refused data is never stored. */
  async write(uploadId: string, readable: Readable, offset: number, write: (r: Readable) => Promise<number>): Promise<number> {
    if (offset >= HEAD_BYTES) return write(readable);
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

  /** The check that needs the whole file; throws ContentMismatchError after discarding the upload. */
  async finish(uploadId: string): Promise<void> {
    const upload = await this.deps.describe(uploadId);
    if (!upload) return;
    const head = await this.deps.readRange(uploadId, 0, Math.min(HEAD_BYTES, upload.size));
    let verdict = inspectHead(upload.diskFormat, head, upload.size, true);
    if (verdict.kind === 'ok' && needsTail(upload.diskFormat, head)) {
      const tailLength = Math.min(TAIL_BYTES, upload.size);
      verdict = inspectTail(upload.diskFormat, await this.deps.readRange(uploadId, upload.size - tailLength, tailLength));
    }
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
