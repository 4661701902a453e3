import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { NotFoundError, UploadExistsError } from '../errors.js';
import { LEASE_MS } from './lease.js';
import { checkTransition, holdsImage, renewed, transitioned, updated } from './record-changes.js';
import type { RecordPatch, Transition, UploadStateStore } from './state-store.js';
import type { UploadEvents } from './upload-events.js';
import type { UploadRecord } from './upload-record.js';

export interface FileStateStoreOptions {
  /** How long a push lease lasts unless renewed. */
  leaseMs?: number;
}

/**
 * Upload records as one JSON file each under `dir`, written atomically
 * (temp file, fsync, rename) and mirrored in memory for cheap reads.
 * One process uses a directory: every check-and-set is one synchronous step on the mirror.
 */
export class FileStateStore implements UploadStateStore {
  readonly #records = new Map<string, UploadRecord>();
  readonly #leaseMs: number;

  protected constructor(
    private readonly dir: string,
    private readonly events: UploadEvents,
    options: FileStateStoreOptions,
  ) {
    this.#leaseMs = options.leaseMs ?? LEASE_MS;
  }

  static async open(dir: string, events: UploadEvents, options: FileStateStoreOptions = {}): Promise<FileStateStore> {
    const store = new this(dir, events, options);
    await fs.mkdir(dir, { recursive: true });
    for (const name of await fs.readdir(dir)) {
      if (!name.endsWith('.json')) continue; // write-file-atomic temp files
      const record = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as UploadRecord;
      // Only this process uses the directory: a lease found here is a stopped process's.
      store.#records.set(record.id, { ...record, lease: null });
    }
    return store;
  }

  async create(record: UploadRecord): Promise<void> {
    // Check and claim in one synchronous step: the event loop makes it atomic for this process.
    for (const other of this.#records.values()) {
      if (other.imageId === record.imageId && holdsImage(other)) {
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

  async transition(id: string, change: Transition): Promise<UploadRecord> {
    checkTransition(change);
    const current = this.#current(id);
    return this.#commit(current, transitioned(current, change, this.#leaseMs));
  }

  async renewLease(id: string, owner: string): Promise<UploadRecord> {
    const current = this.#current(id);
    // Not news for anyone watching: the record changes for the store alone.
    return this.#commit(current, renewed(current, owner, this.#leaseMs), false);
  }

  async update(id: string, patch: RecordPatch, only?: (current: UploadRecord) => boolean): Promise<UploadRecord> {
    const current = this.#current(id);
    return this.#commit(current, updated(current, patch, only));
  }

  async delete(id: string): Promise<void> {
    if (!this.#records.delete(id)) return;
    await fs.rm(this.#file(id), { force: true });
    this.events.publish({ kind: 'removed', id });
  }

  async list(): Promise<UploadRecord[]> {
    return [...this.#records.values()];
  }

  #current(id: string): UploadRecord {
    const current = this.#records.get(id);
    if (!current) throw new NotFoundError(`upload ${id} not found`);
    return current;
  }

  /** Memory first so that concurrent changes build on (or refuse) each other; undone if the disk refuses. */
  async #commit(current: UploadRecord, next: UploadRecord, publish = true): Promise<UploadRecord> {
    this.#records.set(next.id, next);
    try {
      await this.#write(next);
    } catch (err) {
      if (this.#records.get(next.id) === next) this.#records.set(next.id, current);
      throw err;
    }
    if (!this.#records.has(next.id)) await fs.rm(this.#file(next.id), { force: true }); // deleted meanwhile
    if (publish) this.events.publish({ kind: 'state', record: next });
    return next;
  }

  #file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  #write(record: UploadRecord): Promise<void> {
    return writeFileAtomic(this.#file(record.id), JSON.stringify(record), { fsync: true });
  }
}
