import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { NotFoundError, UploadExistsError } from '../errors.js';
import { LEASE_MS, liveHolder } from './lease.js';
import { assertPlainPatch, type RecordPatch, type Transition, type UploadStateStore } from './state-store.js';
import { assertAllowed, LEASED_STATES, StateConflictError } from './transitions.js';
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

  async transition(id: string, change: Transition): Promise<UploadRecord> {
    const from = typeof change.from === 'string' ? [change.from] : change.from;
    assertAllowed(from, change.to);
    assertPlainPatch(change.patch ?? {});
    const leased = LEASED_STATES.includes(change.to);
    if (leased && !change.owner) throw new TypeError(`a move to ${change.to} needs an owner`);
    const current = this.#current(id);
    if (!from.includes(current.state)) throw new StateConflictError(id, current.state);
    const holder = liveHolder(current.lease);
    if (holder !== undefined && holder !== change.owner) throw new StateConflictError(id, current.state, holder);
    const lease = leased ? { owner: change.owner!, until: this.#leaseUntil() } : null;
    return this.#commit(current, { ...current, ...change.patch, state: change.to, lease, updatedAt: new Date().toISOString() });
  }

  async renewLease(id: string, owner: string): Promise<UploadRecord> {
    const current = this.#current(id);
    if (!LEASED_STATES.includes(current.state) || current.lease?.owner !== owner) {
      throw new StateConflictError(id, current.state, current.lease?.owner);
    }
    // Not news for anyone watching: the record changes for the store alone.
    return this.#commit(current, { ...current, lease: { owner, until: this.#leaseUntil() } }, false);
  }

  async update(id: string, patch: RecordPatch): Promise<UploadRecord> {
    assertPlainPatch(patch);
    const current = this.#current(id);
    return this.#commit(current, { ...current, ...patch, updatedAt: new Date().toISOString() });
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

  #leaseUntil(): string {
    return new Date(Date.now() + this.#leaseMs).toISOString();
  }

  #file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  #write(record: UploadRecord): Promise<void> {
    return writeFileAtomic(this.#file(record.id), JSON.stringify(record), { fsync: true });
  }
}
