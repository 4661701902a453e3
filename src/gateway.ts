import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { MemoryLocker } from '@tus/server';
import type { Config } from './config.js';
import { GlanceClient } from './glance/client.js';
import { CatalogEndpoint, StaticEndpoint, type EndpointResolver } from './glance/endpoint.js';
import { Keystone } from './glance/keystone.js';
import { createApp } from './http/app.js';
import { ContentGuard } from './ingest/content-guard.js';
import { inspectStored } from './ingest/content/inspect.js';
import { freeBytes } from './ingest/disk-space.js';
import { IngestFileStore } from './ingest/file-store.js';
import { Preflight } from './ingest/preflight.js';
import { Reservations } from './ingest/reservations.js';
import { createTusServer, TUS_PATH } from './ingest/tus-server.js';
import { Uploads } from './ingest/uploads.js';
import type { Logger } from './logger.js';
import { Metrics } from './observability/metrics.js';
import { FileStateStore } from './state/file-state-store.js';
import { TokenVault } from './state/token-vault.js';
import { UploadEvents } from './state/upload-events.js';
import { Pusher } from './transfer/pusher.js';

export interface Gateway {
  server: http.Server;
  uploads: Uploads;
  pusher: Pusher;
  events: UploadEvents;
  /** Resolves once listening; `port` is then the real one (config port 0 picks a free one). */
  listen(): Promise<{ port: number }>;
  /** Stop taking requests, let running PATCHes finish for a grace period, abort pushes. */
  close(): Promise<void>;
}

const EXPIRY_SWEEP_MS = 60 * 60_000;

/** Wire the layers: HTTP -> ingest (tus) -> transfer (push) -> Glance client. */
export async function createGateway(config: Config, logger: Logger): Promise<Gateway> {
  const uploadsDir = path.join(config.storageDir, 'uploads');
  await fsp.mkdir(uploadsDir, { recursive: true });

  const events = new UploadEvents();
  const store = await FileStateStore.open(path.join(config.storageDir, 'state'), events);
  const tokens = new TokenVault();
  const glance = new GlanceClient();
  const keystone = new Keystone(config.keystone.authUrl);
  const endpoints: EndpointResolver = config.glanceUrl
    ? new StaticEndpoint(config.glanceUrl)
    : new CatalogEndpoint(config.keystone.interface, config.keystone.region);
  const reservations = new Reservations(() => freeBytes(uploadsDir), config.limits);

  // Removals (terminated, expired, refused) reach the upload records through this late-bound callback.
  let uploads: Uploads | undefined;
  const files = new IngestFileStore({
    directory: uploadsDir,
    expiryMs: config.uploadExpiryMs,
    onRemoved: (id) => uploads!.forget(id),
    onWritten: (bytes) => metrics.bytesReceived(bytes), // writes start once the server listens
    beforeWrite: (id) => reservations.resume(id),
    onStored: (id, offset) => uploads!.stored(id, offset),
  });
  const guard = new ContentGuard({
    describe: async (id) => {
      const record = await store.get(id);
      return record?.state === 'receiving' ? { diskFormat: record.diskFormat, size: record.size } : undefined;
    },
    readRange: (id, start, length) => files.readRange(id, start, length),
    discard: (id) => files.remove(id),
  });
  files.guard = guard;
  // A disk_format switched in Glance after the upload: the whole stored file is judged again.
  const recheck = async (id: string, diskFormat: string, size: number) => {
    const verdict = await inspectStored(diskFormat, size, (start, length) => files.readRange(id, start, length));
    return verdict.kind === 'reject' ? verdict.reason : null;
  };
  const pusher = new Pusher({ store, tokens, glance, files, events, logger, recheck }, config.push);
  uploads = new Uploads({ store, events, guard, tokens, glance, keystone, files, pusher, reservations, logger });

  const preflight = new Preflight({ glance, keystone, endpoints, reservations });
  const tus = createTusServer({
    files,
    locker: new MemoryLocker(), // one process; a shared locker goes here for several instances
    preflight,
    uploads,
    logger,
    maxUploadSize: config.maxUploadSize,
    allowedOrigins: config.allowedOrigins,
  });

  const health = {
    storage: async () => {
      const probe = path.join(config.storageDir, `.ready-${randomBytes(8).toString('hex')}`);
      await fsp.writeFile(probe, 'ok');
      await fsp.rm(probe);
    },
    // Every request needs Keystone; in catalog mode there is no fixed Glance to ask besides.
    glance: async () => {
      await glance.ping(config.keystone.authUrl);
      if (config.glanceUrl) await glance.ping(`${config.glanceUrl}/versions`);
    },
  };
  const server = http.createServer();
  const metrics = new Metrics({ events, queueDepth: () => pusher.queueDepth, server });
  const app = createApp({
    tus,
    tusPath: TUS_PATH,
    uploads,
    pusher,
    events,
    health,
    metrics,
    logger,
    allowedOrigins: config.allowedOrigins,
    ui: config.ui,
    socketIdleTimeoutMs: config.socketIdleTimeoutMs,
  });
  server.on('request', app);
  // A PATCH of many GB is one long request: no total limit, only an idle one.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  server.timeout = config.socketIdleTimeoutMs;

  await uploads.recover();
  const sweep =
    config.uploadExpiryMs > 0
      ? setInterval(() => {
          uploads.sweep(config.uploadExpiryMs).catch((err: unknown) => logger.error({ err }, 'expiry sweep failed'));
        }, Math.min(EXPIRY_SWEEP_MS, config.uploadExpiryMs)).unref()
      : undefined;

  return {
    server,
    uploads,
    pusher,
    events,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          const address = server.address();
          resolve({ port: typeof address === 'object' && address ? address.port : config.port });
        });
      }),
    close: async () => {
      clearInterval(sweep);
      reservations.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      events.shutdown(); // event streams end now rather than hold the grace period
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs);
      pusher.close();
      await closed;
      clearTimeout(grace);
      await Promise.all([glance.close(), keystone.close()]);
    },
  };
}
