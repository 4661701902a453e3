// The Redis implementations against the same contract suites as the local ones, on a
// redis-server of this file's own (a free port, AOF on).
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { RedisLocker } from '../../src/ingest/redis-locker.js';
import { createLogger } from '../../src/logger.js';
import { redisOptions } from '../../src/state/redis-connection.js';
import { RedisStateStore } from '../../src/state/redis-state-store.js';
import { UploadEvents } from '../../src/state/upload-events.js';
import { BullPushQueue } from '../../src/transfer/bullmq-push-queue.js';
import type { PushQueue } from '../../src/transfer/push-queue.js';
import { type RedisServer, startRedis } from '../support/redis.js';
import { register, uid } from './contract.js';
import { lockerSuite } from './locker.js';
import { pushQueueSuite } from './push-queue.js';
import { stateStoreSuite } from './state-store.js';

let server: RedisServer;
const clients: Redis[] = [];
const queues: PushQueue[] = [];

before(async () => {
  server = await startRedis();
});
after(async () => {
  await Promise.all(queues.map((q) => q.close()));
  for (const client of clients) client.disconnect();
  await server?.destroy();
});

function client(): Redis {
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  clients.push(redis);
  return redis;
}

register('RedisStateStore', stateStoreSuite, async ({ leaseMs }) => new RedisStateStore(client(), new UploadEvents(), { prefix: `${uid('t')}:`, leaseMs }));
register('RedisLocker', lockerSuite, () => {
  // Two instances' worth of lockers on one prefix would share locks: one prefix per locker, as one deployment.
  return new RedisLocker(client(), client(), { prefix: `${uid('t')}:`, acquireTimeoutMs: 5_000 });
});
register('BullPushQueue', pushQueueSuite, (concurrency, worker) => {
  const queue = new BullPushQueue(
    { connection: { ...redisOptions(server.url), maxRetriesPerRequest: null }, name: uid('pushes'), concurrency, logger: createLogger('silent') },
    worker,
  );
  queues.push(queue);
  return queue;
});
