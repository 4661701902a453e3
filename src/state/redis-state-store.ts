import type { Redis } from 'ioredis';
import { GatewayError, NotFoundError, StateUnavailableError, UploadExistsError } from '../errors.js';
import { LEASE_MS } from './lease.js';
import { checkTransition, renewed, transitioned, updated } from './record-changes.js';
import type { RecordPatch, Transition, UploadStateStore } from './state-store.js';
import type { UploadEvents } from './upload-events.js';
import type { UploadRecord } from './upload-record.js';

/** Set the key to `next` only if it still holds `expected`: the step that makes a read-check-write atomic. */
const COMPARE_AND_SET = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/** Create unless the image's current upload is unfinished (any state but active, or a record being written). */
const CREATE = `
local holder = redis.call('GET', KEYS[2])
if holder then
  local other = redis.call('GET', ARGV[3] .. holder)
  if other and not string.find(other, '"state":"active"', 1, true) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
return 1`;

/** Delete the record, and the image's pointer if it is still this upload's. */
const DELETE = `
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[1])
return redis.call('DEL', KEYS[1])`;

const MAX_TRIES = 100;

export interface RedisStateStoreOptions {
  /** Key prefix: every key this store writes starts with it. */
  prefix?: string;
  leaseMs?: number;
}

/**
 * Upload records in Redis, one JSON string each, shared by every instance. Each change reads the
 * record, checks it with the same rules as every store, and writes it with a compare-and-set:
 * a change that lost a race reads again. Never holds a token (records never do).
 */
export class RedisStateStore implements UploadStateStore {
  readonly #prefix: string;
  readonly #leaseMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly events: UploadEvents,
    options: RedisStateStoreOptions = {},
  ) {
    this.#prefix = options.prefix ?? 'gw:';
    this.#leaseMs = options.leaseMs ?? LEASE_MS;
    redis.defineCommand('gwCompareAndSet', { numberOfKeys: 1, lua: COMPARE_AND_SET });
    redis.defineCommand('gwCreate', { numberOfKeys: 3, lua: CREATE });
    redis.defineCommand('gwDelete', { numberOfKeys: 3, lua: DELETE });
  }

  async create(record: UploadRecord): Promise<void> {
    const made = await this.#run('gwCreate', this.#key(record.id), this.#imageKey(record.imageId), this.#setKey(), JSON.stringify(record), record.id, `${this.#prefix}upload:`);
    if (made !== 1) throw new UploadExistsError(`image ${record.imageId} already has an upload in progress`);
    this.events.publish({ kind: 'state', record });
  }

  async get(id: string): Promise<UploadRecord | undefined> {
    const raw = await this.#ask(this.redis.get(this.#key(id)));
    return raw === null ? undefined : (JSON.parse(raw) as UploadRecord);
  }

  async transition(id: string, change: Transition): Promise<UploadRecord> {
    checkTransition(change);
    return this.#change(id, (current) => transitioned(current, change, this.#leaseMs));
  }

  renewLease(id: string, owner: string): Promise<UploadRecord> {
    return this.#change(id, (current) => renewed(current, owner, this.#leaseMs), false);
  }

  update(id: string, patch: RecordPatch, only?: (current: UploadRecord) => boolean): Promise<UploadRecord> {
    return this.#change(id, (current) => updated(current, patch, only));
  }

  async delete(id: string): Promise<void> {
    const record = await this.get(id);
    if (!record) return;
    const removed = await this.#run('gwDelete', this.#key(id), this.#imageKey(record.imageId), this.#setKey(), id);
    if (removed === 1) this.events.publish({ kind: 'removed', id });
  }

  async list(): Promise<UploadRecord[]> {
    const ids = await this.#ask(this.redis.smembers(this.#setKey()));
    if (ids.length === 0) return [];
    const raws = await this.#ask(this.redis.mget(...ids.map((id) => this.#key(id))));
    return raws.filter((raw): raw is string => raw !== null).map((raw) => JSON.parse(raw) as UploadRecord);
  }

  async #change(id: string, make: (current: UploadRecord) => UploadRecord, publish = true): Promise<UploadRecord> {
    for (let i = 0; i < MAX_TRIES; i++) {
      const raw = await this.#ask(this.redis.get(this.#key(id)));
      if (raw === null) throw new NotFoundError(`upload ${id} not found`);
      const next = make(JSON.parse(raw) as UploadRecord);
      if ((await this.#run('gwCompareAndSet', this.#key(id), raw, JSON.stringify(next))) === 1) {
        if (publish) this.events.publish({ kind: 'state', record: next });
        return next;
      }
    }
    throw new StateUnavailableError(`upload ${id}: the record kept changing under ${MAX_TRIES} attempts to change it`);
  }

  #run(command: string, ...args: string[]): Promise<unknown> {
    return this.#ask((this.redis as unknown as Record<string, (...a: string[]) => Promise<unknown>>)[command]!(...args));
  }

  /** Redis's own failures (down, unreachable, a full disk for its AOF) as the gateway's 503. */
  async #ask<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      throw new StateUnavailableError(`Redis cannot be reached: ${(err as Error).message}`);
    }
  }

  #key(id: string): string {
    return `${this.#prefix}upload:${id}`;
  }

  #imageKey(imageId: string): string {
    return `${this.#prefix}image:${imageId}`;
  }

  #setKey(): string {
    return `${this.#prefix}uploads`;
  }
}
