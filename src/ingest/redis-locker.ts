import { randomUUID } from 'node:crypto';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import type { Redis } from 'ioredis';
import { StateUnavailableError } from '../errors.js';

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface RedisLockerOptions {
  prefix?: string;
  /** A lock lives this long unless its holder renews it (every third of it). */
  ttlMs?: number;
  /** How long a request waits for a lock before tus answers it (the holder is asked to let go meanwhile). */
  acquireTimeoutMs?: number;
}

/**
 * tus's per-upload lock across instances: `SET NX PX` with an owner token, renewed while held.
 * A request that wants a held lock publishes a release request; the holder, on whichever
 * instance, is asked to let go (tus then ends its request within `lockDrainTimeout`). A holder
 * that finds its lock lost (it expired, or was taken) is asked to let go the same way, so it
 * stops writing.
 */
export class RedisLocker implements Locker {
  /** This instance's holders, by upload id: where release requests are delivered. */
  readonly #holders = new Map<string, RequestRelease>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly prefix: string;
  readonly ttlMs: number;
  readonly acquireTimeoutMs: number;
  readonly #subscribed: Promise<unknown>;

  constructor(
    readonly redis: Redis,
    subscriber: Redis,
    options: RedisLockerOptions = {},
  ) {
    this.prefix = options.prefix ?? 'gw:';
    this.ttlMs = options.ttlMs ?? 10_000;
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? 30_000;
    redis.defineCommand('gwLockRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('gwLockRelease', { numberOfKeys: 1, lua: RELEASE });
    this.#subscribed = subscriber.subscribe(this.#channel('release'), this.#channel('freed'));
    subscriber.on('message', (channel: string, id: string) => {
      if (channel === this.#channel('release')) void this.#holders.get(id)?.();
      if (channel === this.#channel('freed')) for (const wake of this.#waiters.get(id) ?? []) wake();
    });
  }

  newLock(id: string): Lock {
    return new RedisLock(this, id);
  }

  /** Resolves once the subscriptions are in place (a release request sent before would be lost). */
  ready(): Promise<unknown> {
    return this.#subscribed;
  }

  key(id: string): string {
    return `${this.prefix}lock:${id}`;
  }

  #channel(kind: 'release' | 'freed'): string {
    return `${this.prefix}lock-${kind}`;
  }

  hold(id: string, release: RequestRelease): void {
    this.#holders.set(id, release);
  }

  letGo(id: string, release: RequestRelease): void {
    if (this.#holders.get(id) === release) this.#holders.delete(id);
  }

  async askHolder(id: string): Promise<void> {
    await this.redis.publish(this.#channel('release'), id);
  }

  async freed(id: string): Promise<void> {
    await this.redis.publish(this.#channel('freed'), id);
  }

  /** Resolves when the lock of `id` is announced free, after `ms`, or when `signal` aborts. */
  wait(id: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const set = this.#waiters.get(id) ?? new Set();
      this.#waiters.set(id, set);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        set.delete(done);
        if (set.size === 0) this.#waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      set.add(done);
    });
  }
}

class RedisLock implements Lock {
  #token: string | undefined;
  #renewal: NodeJS.Timeout | undefined;
  #release: RequestRelease | undefined;
  /** Until when the lock surely holds (its last renewal's expiry). */
  #holds = 0;

  constructor(
    private readonly locker: RedisLocker,
    private readonly id: string,
  ) {}

  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { locker, id } = this;
    const token = randomUUID();
    const deadline = Date.now() + locker.acquireTimeoutMs;
    await locker.ready().catch(() => undefined);
    for (let asked = 0; ; asked++) {
      if (signal.aborted || Date.now() > deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
      const taken = await locker.redis.set(locker.key(id), token, 'PX', locker.ttlMs, 'NX').catch((err: Error) => {
        throw new StateUnavailableError(`Redis cannot be reached: ${err.message}`);
      });
      if (taken === 'OK') break;
      // Ask again now and then: a holder on an instance that was busy may have missed it.
      if (asked % 10 === 0) await locker.askHolder(id).catch(() => undefined);
      await locker.wait(id, 100, signal);
    }
    this.#token = token;
    this.#holds = Date.now() + locker.ttlMs;
    this.#release = requestRelease;
    locker.hold(id, requestRelease);
    this.#renewal = setInterval(() => void this.#renew(), Math.max(50, Math.floor(locker.ttlMs / 3)));
    this.#renewal.unref();
  }

  async unlock(): Promise<void> {
    const token = this.#stop();
    if (token === undefined) return;
    // Redis away: the lock expires on its own within its TTL.
    const redis = this.locker.redis as unknown as { gwLockRelease(key: string, token: string): Promise<number> };
    await redis.gwLockRelease(this.locker.key(this.id), token).catch(() => undefined);
    await this.locker.freed(this.id).catch(() => undefined);
  }

  async #renew(): Promise<void> {
    const token = this.#token;
    if (token === undefined) return;
    const redis = this.locker.redis as unknown as { gwLockRenew(key: string, token: string, ttl: number): Promise<number> };
    const asked = Date.now();
    const kept = await redis.gwLockRenew(this.locker.key(this.id), token, this.locker.ttlMs).catch(() => -1);
    if (kept === 1) this.#holds = asked + this.locker.ttlMs;
    // Redis did not answer: the next renewal tries again, unless the lock may lapse before it.
    if (kept === 1 || (kept === -1 && Date.now() < this.#holds - this.locker.ttlMs / 3)) return;
    // Lost: expired while Redis was away, or taken. Stop writing now.
    const release = this.#release;
    this.#stop();
    await release?.();
  }

  #stop(): string | undefined {
    clearInterval(this.#renewal);
    this.#renewal = undefined;
    if (this.#release) this.locker.letGo(this.id, this.#release);
    this.#release = undefined;
    const token = this.#token;
    this.#token = undefined;
    return token;
  }
}
