import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileStore } from '@tus/file-store';
import { DataStore, type Upload } from '@tus/utils';
import { freeBytes } from '../ingest/disk-space.js';
import type { StoredData } from '../ingest/guarded-store.js';
import type { FollowOptions, FollowStream, StoredFiles } from '../transfer/stored-files.js';
import { followFileInto, GrowingFileReader } from './growing-file.js';

const READ_CHUNK = 1 << 20;
const WRITE_BATCH = 2 << 20;

/**
 * Uploads as files in one directory: @tus/file-store keeps the info files and creates and removes
 * uploads; writes and reads are this store's own. The only place that knows where bytes live; the
 * gateway's rules wrap it (GuardedStore) and the push reads it as StoredFiles.
 */
export class LocalFiles extends DataStore implements StoredData, StoredFiles {
  readonly #files: FileStore;

  constructor(private readonly directory: string) {
    super();
    this.#files = new FileStore({ directory });
    this.extensions = this.#files.extensions;
  }

  override create(upload: Upload): Promise<Upload> {
    return this.#files.create(upload);
  }

  override getUpload(uploadId: string): Promise<Upload> {
    return this.#files.getUpload(uploadId);
  }

  override remove(uploadId: string): Promise<void> {
    return this.#files.remove(uploadId);
  }

  override declareUploadLength(uploadId: string, length: number): Promise<void> {
    return this.#files.declareUploadLength(uploadId, length);
  }

  /** @deprecated See StoredFiles.path: the last leak, for pusher.ts only. */
  #path(uploadId: string): string {
    return path.join(this.directory, uploadId);
  }

  /**
   * Append at `offset`. Unlike FileStore's write it keeps the cause of a failure (ENOSPC stays
   * ENOSPC), and whatever reached the disk before it stays: that is the new offset.
   */
  override async write(readable: Readable, uploadId: string, offset: number): Promise<number> {
    // A large buffer lets the stream gather chunks into one writev while the previous write runs.
    const out = fs.createWriteStream(this.#path(uploadId), { flags: 'r+', start: offset, highWaterMark: WRITE_BATCH });
    await pipeline(readable, out);
    return offset + out.bytesWritten;
  }

  read(uploadId: string, { start = 0, end }: { start?: number; end?: number } = {}): Readable {
    if (end !== undefined && end <= start) return Readable.from([]);
    // fs counts `end` in, a range leaves it out.
    return fs.createReadStream(this.#path(uploadId), { start, end: end === undefined ? undefined : end - 1, highWaterMark: READ_CHUNK });
  }

  follow(uploadId: string, opts: FollowOptions): FollowStream {
    return new GrowingFileReader(this.#path(uploadId), opts);
  }

  followInto(uploadId: string, buffer: Buffer, opts: FollowOptions): AsyncIterable<Buffer> {
    return followFileInto(this.#path(uploadId), buffer, opts);
  }

  async readRange(uploadId: string, start: number, length: number): Promise<Buffer> {
    const handle = await fsp.open(this.#path(uploadId), 'r');
    try {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async offset(uploadId: string): Promise<number> {
    return (await fsp.stat(this.#path(uploadId))).size;
  }

  async lastWrite(uploadId: string): Promise<Date> {
    return (await fsp.stat(this.#path(uploadId))).mtime;
  }

  async list(): Promise<string[]> {
    return (await this.#files.configstore.list?.()) ?? [];
  }

  /**
   * Free a pushed upload's blocks but keep its size, so HEAD still reports it complete:
   * an empty sparse file of the same size replaces it in one rename.
   */
  async release(uploadId: string): Promise<void> {
    const file = this.#path(uploadId);
    const { size } = await fsp.stat(file);
    const sparse = `${file}.released`;
    await fsp.writeFile(sparse, '');
    await fsp.truncate(sparse, size);
    await fsp.rename(sparse, file);
  }

  capacity(): Promise<number> {
    return freeBytes(this.directory);
  }
}
