import type { Readable } from 'node:stream';
import { DataStore, type Upload } from '@tus/utils';
import { InsufficientStorageError } from '../errors.js';
import { ContentGuard, type GuardedUpload } from './content-guard.js';
import { StoreEvents } from './store-events.js';

/** What the gateway's rules need of a data store besides tus's DataStore. */
export interface StoredData {
  /** Bytes [start, start + length) as stored now; fewer at the end. */
  readRange(uploadId: string, start: number, length: number): Promise<Buffer>;
  /** Bytes stored so far (the tus offset). */
  offset(uploadId: string): Promise<number>;
  /** When the upload's data last changed: expiry counts idle time from there. */
  lastWrite(uploadId: string): Promise<Date>;
  /** Every upload the store holds (for the expiry sweep). */
  list(): Promise<string[]>;
}

export interface GuardedStoreOptions {
  /** Unfinished uploads idle this long are removed; 0 keeps them forever. */
  expiryMs: number;
  /** What an upload claims to be, for the content guard; undefined lets its bytes through unchecked. */
  describe(uploadId: string): Promise<GuardedUpload | undefined>;
}

/** A length is always declared: no creation-defer-length. */
const EXTENSIONS = ['creation', 'creation-with-upload', 'termination'];

/**
 * Any tus DataStore with the gateway's rules: incoming bytes pass the content guard, a full
 * store is the client's 507 (the bytes stored before it stay), expiry counts from the last write
 * and never touches complete uploads (they wait for their push), and what happens to an upload
 * is told through `events`.
 */
export class GuardedStore extends DataStore {
  readonly events = new StoreEvents();
  /** The content check; its whole-file part runs when an upload completes. */
  readonly guard: ContentGuard;

  constructor(
    private readonly inner: DataStore & StoredData,
    private readonly opts: GuardedStoreOptions,
  ) {
    super();
    this.extensions = [...EXTENSIONS.filter((e) => inner.hasExtension(e)), ...(opts.expiryMs > 0 ? ['expiration'] : [])];
    this.guard = new ContentGuard({
      describe: opts.describe,
      readRange: (id, start, length) => inner.readRange(id, start, length),
      discard: (id) => this.remove(id),
    });
  }

  override create(upload: Upload): Promise<Upload> {
    return this.inner.create(upload);
  }

  override declareUploadLength(uploadId: string, length: number): Promise<void> {
    return this.inner.declareUploadLength(uploadId, length);
  }

  override getExpiration(): number {
    return this.opts.expiryMs;
  }

  override async write(readable: Readable, uploadId: string, offset: number): Promise<number> {
    await this.events.emit('writing', uploadId);
    const stored = await this.guard.write(uploadId, readable, offset, (r) => this.#write(r, uploadId, offset));
    await this.events.emit('stored', uploadId, stored);
    return stored;
  }

  async #write(readable: Readable, uploadId: string, offset: number): Promise<number> {
    try {
      const end = await this.inner.write(readable, uploadId, offset);
      await this.events.emit('written', end - offset);
      return end;
    } catch (err) {
      // Whatever was stored before the failure stays: it is where the client resumes.
      const kept = await this.inner.offset(uploadId).catch(() => offset);
      await this.events.emit('written', Math.max(0, kept - offset));
      if (isFull(err)) throw new InsufficientStorageError('storage is full; the bytes received so far are kept, resume later');
      throw err;
    }
  }

  /**
   * @tus/server checks expiry against `creation_date`: reporting the last write there
   * makes it an idle timeout, and leaving it out for complete uploads exempts them.
   */
  override async getUpload(uploadId: string): Promise<Upload> {
    const upload = await this.inner.getUpload(uploadId);
    const complete = upload.size !== undefined && upload.offset >= upload.size;
    upload.creation_date = complete ? undefined : (await this.inner.lastWrite(uploadId)).toISOString();
    return upload;
  }

  override async remove(uploadId: string): Promise<void> {
    await this.inner.remove(uploadId);
    await this.events.emit('removed', uploadId);
  }

  /** Bytes stored so far (the tus offset). */
  offset(uploadId: string): Promise<number> {
    return this.inner.offset(uploadId);
  }

  override async deleteExpired(): Promise<number> {
    if (this.opts.expiryMs <= 0) return 0;
    const now = Date.now();
    let removed = 0;
    for (const id of await this.inner.list()) {
      const upload = await this.getUpload(id).catch(() => undefined);
      if (!upload?.creation_date) continue; // complete, or already gone
      if (now - Date.parse(upload.creation_date) < this.opts.expiryMs) continue;
      await this.remove(id);
      removed++;
    }
    return removed;
  }
}

/** A full disk or quota; another store may throw InsufficientStorageError itself. */
function isFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
