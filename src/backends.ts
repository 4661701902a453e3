import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { MemoryLocker } from '@tus/server';
import type { DataStore, Locker } from '@tus/utils';
import type { Config } from './config.js';
import type { StoredData } from './ingest/guarded-store.js';
import { RedisLocker } from './ingest/redis-locker.js';
import type { Logger } from './logger.js';
import { FileStateStore } from './state/file-state-store.js';
import { connectRedis, redisOptions, subscriberOf } from './state/redis-connection.js';
import { RedisEventRelay } from './state/redis-event-relay.js';
import { RedisStateStore } from './state/redis-state-store.js';
import type { UploadStateStore } from './state/state-store.js';
import { MemoryTokenSource, type TokenSource } from './state/token-source.js';
import { UploadEvents } from './state/upload-events.js';
import { LocalFiles } from './storage/local-files.js';
import { BullPushQueue } from './transfer/bullmq-push-queue.js';
import { LocalPushQueue, type PushQueue, type PushWorker } from './transfer/push-queue.js';
import type { StoredFiles } from './transfer/stored-files.js';

/** The pieces that hold state; each has a local implementation and a shared (Redis) one. */
export interface Backends {
  /** Where upload bytes live: tus's data store underneath the gateway's rules, and what the push reads. */
  data: DataStore & StoredData & StoredFiles;
  /** Upload records. */
  state: UploadStateStore;
  /** Change notifications: this instance's, and with shared state every instance's. */
  events: UploadEvents;
  /** tus's per-upload lock. */
  locker: Locker;
  /** The waiting line of pushes, around the pusher's worker. */
  queue: (worker: PushWorker) => PushQueue;
  /** The callers' tokens, which pushes act with: in this process's memory only, whatever else is shared. */
  tokens: TokenSource;
  /** Throws unless storage takes writes now (readiness). */
  checkStorage(): Promise<void>;
  /** Throws unless the shared state answers (readiness). */
  checkState(): Promise<void>;
  close(): Promise<void>;
}

export interface BackendDeps {
  /** This process, as the origin of the events it shares. */
  instanceId: string;
  logger: Logger;
}

/** The one place that chooses implementations: local ones in `config.storageDir`, or shared ones on `config.redisUrl`. */
export async function createBackends(config: Config, deps: BackendDeps): Promise<Backends> {
  const uploadsDir = path.join(config.storageDir, 'uploads');
  await fsp.mkdir(uploadsDir, { recursive: true });
  const local = {
    data: new LocalFiles(uploadsDir),
    tokens: new MemoryTokenSource(), // memory only: tokens never reach disk or Redis
    checkStorage: async () => {
      const probe = path.join(config.storageDir, `.ready-${randomBytes(8).toString('hex')}`);
      await fsp.writeFile(probe, 'ok');
      await fsp.rm(probe);
    },
  };
  if (!config.redisUrl) {
    const events = new UploadEvents();
    return {
      ...local,
      events,
      state: await FileStateStore.open(path.join(config.storageDir, 'state'), events),
      locker: new MemoryLocker(), // one process
      queue: (worker) => new LocalPushQueue(config.push.concurrency, worker),
      checkState: async () => undefined,
      close: async () => undefined,
    };
  }
  const url = config.redisUrl;
  const redis = await connectRedis(url);
  const subscriber = await subscriberOf(redis);
  const events = new UploadEvents(new RedisEventRelay(redis, subscriber, deps.instanceId));
  return {
    ...local,
    events,
    state: new RedisStateStore(redis, events),
    locker: new RedisLocker(redis, subscriber),
    queue: (worker) =>
      new BullPushQueue(
        { connection: { ...redisOptions(url), maxRetriesPerRequest: null }, name: 'pushes', concurrency: config.push.concurrency, logger: deps.logger },
        worker,
      ),
    checkState: async () => {
      await redis.ping();
    },
    close: async () => {
      subscriber.disconnect();
      redis.disconnect();
    },
  };
}
