import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { MemoryLocker } from '@tus/server';
import type { DataStore, Locker } from '@tus/utils';
import type { Config } from './config.js';
import type { StoredData } from './ingest/guarded-store.js';
import { FileStateStore } from './state/file-state-store.js';
import type { UploadStateStore } from './state/state-store.js';
import { MemoryTokenSource, type TokenSource } from './state/token-source.js';
import type { UploadEvents } from './state/upload-events.js';
import { LocalFiles } from './storage/local-files.js';
import { LocalPushQueue, type PushQueue, type PushWorker } from './transfer/push-queue.js';
import type { StoredFiles } from './transfer/stored-files.js';

/** The pieces that hold state; each has a local implementation, and a shared one can take its place here. */
export interface Backends {
  /** Where upload bytes live: tus's data store underneath the gateway's rules, and what the push reads. */
  data: DataStore & StoredData & StoredFiles;
  /** Upload records. */
  state: UploadStateStore;
  /** tus's per-upload lock. */
  locker: Locker;
  /** The waiting line of pushes, around the pusher's worker. */
  queue: (worker: PushWorker) => PushQueue;
  /** The callers' tokens, which pushes act with. */
  tokens: TokenSource;
  /** Throws unless storage takes writes now (readiness). */
  checkStorage(): Promise<void>;
}

export interface BackendDeps {
  /** The record store publishes every change here. */
  events: UploadEvents;
}

/** The one place that chooses implementations: today all local, in `config.storageDir`. */
export async function createBackends(config: Config, deps: BackendDeps): Promise<Backends> {
  const uploadsDir = path.join(config.storageDir, 'uploads');
  await fsp.mkdir(uploadsDir, { recursive: true });
  return {
    data: new LocalFiles(uploadsDir),
    state: await FileStateStore.open(path.join(config.storageDir, 'state'), deps.events),
    locker: new MemoryLocker(), // one process
    queue: (worker) => new LocalPushQueue(config.push.concurrency, worker),
    tokens: new MemoryTokenSource(), // memory only: tokens never reach disk
    checkStorage: async () => {
      const probe = path.join(config.storageDir, `.ready-${randomBytes(8).toString('hex')}`);
      await fsp.writeFile(probe, 'ok');
      await fsp.rm(probe);
    },
  };
}
