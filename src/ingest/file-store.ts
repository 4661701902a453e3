import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileStore } from '@tus/file-store';
import type { Upload } from '@tus/utils';
import { InsufficientStorageError } from '../errors.js';
import type { StoredFiles } from '../transfer/stored-files.js';
import type { ContentGuard } from './content-guard.js';

export interface IngestFileStoreOptions {
  directory: string;
  /** Unfinished uploads idle this long are removed; 0 keeps them forever. */
  expiryMs: number;
  /** Called after an upload's data is removed (terminated, expired or refused), before anyone is answered. */
  onRemoved?: (uploadId: string) => Promise<void>;
  /** Bytes stored by each write (for metrics). */
  onWritten?: (bytes: number) => void;
  /** Before a write: may refuse it (an upload whose storage reservation lapsed, say). */
  beforeWrite?: (uploadId: string) => Promise<void>;
  /** After a write, with the upload's new offset. */
  onStored?: (uploadId: string, offset: number) => Promise<void>;
}

const READ_CHUNK = 1 << 20;
const WRITE_BATCH = 2 << 20;

/**
 * @tus/file-store with the gateway's rules: a length is always declared, expiry counts
 * from the last write and never touches complete uploads (they wait for their push),
 * and incoming bytes pass the content guard.
 */
export class IngestFileStore extends FileStore implements StoredFiles {
  guard: ContentGuard | undefined;

  constructor(private readonly opts: IngestFileStoreOptions) {
    super({ directory: opts.directory, expirationPeriodInMilliseconds: opts.expiryMs });
    this.extensions = ['creation', 'creation-with-upload', 'termination', ...(opts.expiryMs > 0 ? ['expiration'] : [])];
  }

  path(uploadId: string): string {
    return path.join(this.directory, uploadId);
  }

  override read(uploadId: string): fs.ReadStream {
    return fs.createReadStream(this.path(uploadId), { highWaterMark: READ_CHUNK });
  }

  override async write(readable: Readable, uploadId: string, offset: number): Promise<number> {
    await this.opts.beforeWrite?.(uploadId);
    const write = (r: Readable) => this.#append(r, uploadId, offset);
    const stored = await (this.guard ? this.guard.write(uploadId, readable, offset, write) : write(readable));
    await this.opts.onStored?.(uploadId, stored);
    return stored;
  }

  /**
   * Append at `offset`. Unlike FileStore's write it keeps the cause of a failure:
   * a full disk is the client's 507, and whatever reached the disk before stays (it is the offset).
   */
  async #append(readable: Readable, uploadId: string, offset: number): Promise<number> {
    // A large buffer lets the stream gather chunks into one writev while the previous write runs.
    const out = fs.createWriteStream(this.path(uploadId), { flags: 'r+', start: offset, highWaterMark: WRITE_BATCH });
    try {
      await pipeline(readable, out);
    } catch (err) {
      this.opts.onWritten?.(out.bytesWritten);
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new InsufficientStorageError('storage is full; the bytes received so far are kept, resume later');
      }
      throw err;
    }
    this.opts.onWritten?.(out.bytesWritten);
    return offset + out.bytesWritten;
  }

  /**
   * @tus/server checks expiry against `creation_date`: reporting the last write there
   * makes it an idle timeout, and leaving it out for complete uploads exempts them.
   */
  override async getUpload(uploadId: string): Promise<Upload> {
    const upload = await super.getUpload(uploadId);
    if (upload.size !== undefined && upload.offset >= upload.size) {
      upload.creation_date = undefined;
    } else {
      upload.creation_date = (await fsp.stat(this.path(uploadId))).mtime.toISOString();
    }
    return upload;
  }

  override async remove(uploadId: string): Promise<void> {
    await super.remove(uploadId);
    await this.opts.onRemoved?.(uploadId);
  }

  /** Bytes stored so far (the tus offset). */
  async offset(uploadId: string): Promise<number> {
    return (await fsp.stat(this.path(uploadId))).size;
  }

  async readRange(uploadId: string, start: number, length: number): Promise<Buffer> {
    const handle = await fsp.open(this.path(uploadId), 'r');
    try {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  /**
   * Free a pushed upload's blocks but keep its size, so HEAD still reports it complete:
   * an empty sparse file of the same size replaces it in one rename.
   */
  async release(uploadId: string): Promise<void> {
    const file = this.path(uploadId);
    const { size } = await fsp.stat(file);
    const sparse = `${file}.released`;
    await fsp.writeFile(sparse, '');
    await fsp.truncate(sparse, size);
    await fsp.rename(sparse, file);
  }

  override async deleteExpired(): Promise<number> {
    const ids = (await this.configstore.list?.()) ?? [];
    const now = Date.now();
    let removed = 0;
    for (const id of ids) {
      const upload = await this.getUpload(id).catch(() => undefined);
      if (!upload?.creation_date) continue; // complete, or already gone
      if (now - Date.parse(upload.creation_date) < this.opts.expiryMs) continue;
      await this.remove(id);
      removed++;
    }
    return removed;
  }
}
