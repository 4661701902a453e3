import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { NotFoundError, UploadExistsError } from '../errors.js';
import type { RecordPatch, UploadStateStore } from './state-store.js';
import type { UploadEvents } from './upload-events.js';
import type { UploadRecord } from './upload-record.js';

/**
 * Upload records as one JSON file each under `dir`, written atomically
 * (temp file, fsync, rename) and mirrored in memory for cheap reads.
 */
export class FileStateStore implements UploadStateStore {
  readonly #records = new Map<string, UploadRecord>();

  private constructor(
    private readonly dir: string,
    private readonly events: UploadEvents,
  ) {}

  static async open(dir: string, events: UploadEvents): Promise<FileStateStore> {
    const store = new FileStateStore(dir, events);
    await fs.mkdir(dir, { recursive: true });
    for (const name of await fs.readdir(dir)) {
      if (!name.endsWith('.json')) continue; // write-file-atomic temp files
      const record = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as UploadRecord;
      store.#records.set(record.id, record);
    }
    return store;
  }

  async create(record: UploadRecord): Promise<void> {
    // Check and claim in one synchronous step: the event loop makes it atomic for this process.
    for (const other of this.#records.values()) {
      // A failed upload still holds its bytes and can be pushed again: it counts until removed.
      if (other.imageId === record.imageId && other.state !== 'active') {
        throw new UploadExistsError(`image ${record.imageId} already has an upload in progress`);
      }
    }
    this.#records.set(record.id, record);
    try {
      await this.#write(record);
    } catch (err) {
      this.#records.delete(record.id);
      throw err;
    }
    this.events.publish({ kind: 'state', record });
  }

  async get(id: string): Promise<UploadRecord | undefined> {
    return this.#records.get(id);
  }

  async update(id: string, patch: RecordPatch): Promise<UploadRecord> {
    const current = this.#records.get(id);
    if (!current) throw new NotFoundError(`upload ${id} not found`);
    const next = { ...current, ...patch, updatedAt: new Date().toISOString() };
    // Memory first so that concurrent updates build on each other; undone if the disk refuses.
    this.#records.set(id, next);
    try {
      await this.#write(next);
    } catch (err) {
      if (this.#records.get(id) === next) this.#records.set(id, current);
      throw err;
    }
    if (!this.#records.has(id)) await fs.rm(this.#file(id), { force: true }); // deleted meanwhile
    this.events.publish({ kind: 'state', record: next });
    return next;
  }

  async delete(id: string): Promise<void> {
    if (!this.#records.delete(id)) return;
    await fs.rm(this.#file(id), { force: true });
    this.events.publish({ kind: 'removed', id });
  }

  async list(): Promise<UploadRecord[]> {
    return [...this.#records.values()];
  }

  #file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  #write(record: UploadRecord): Promise<void> {
    return writeFileAtomic(this.#file(record.id), JSON.stringify(record), { fsync: true });
  }
}
