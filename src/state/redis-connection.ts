import { Redis, type RedisOptions } from 'ioredis';

/** ioredis options from a `redis://[user:password@]host:port[/db]` (or `rediss://`) URL. */
export function redisOptions(url: string): RedisOptions {
  const u = new URL(url);
  const db = Number(u.pathname.replace(/^\//, '') || 0);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    db,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * A connection for requests that must not wait for Redis: while it is away, a command fails at
 * once (the request gets 503) instead of queueing; ioredis keeps reconnecting meanwhile.
 */
export async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis({ ...redisOptions(url), lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined); // reconnects on its own; readiness and requests report it
  await redis.connect();
  return redis;
}

/** A second connection on the same server for subscriptions (a subscribed connection does nothing else). */
export async function subscriberOf(redis: Redis): Promise<Redis> {
  const subscriber = redis.duplicate({ enableOfflineQueue: true, lazyConnect: true });
  subscriber.on('error', () => undefined);
  await subscriber.connect();
  return subscriber;
}
