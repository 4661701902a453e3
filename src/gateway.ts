import http from 'node:http';
import type { Duplex } from 'node:stream';
import { createBackends } from './backends.js';
import { type Config, ConfigError } from './config.js';
import { GlanceClient } from './glance/client.js';
import { CatalogEndpoint, StaticEndpoint, type EndpointResolver } from './glance/endpoint.js';
import { Keystone } from './glance/keystone.js';
import { KeystoneTrusts, ServiceCredentialsError } from './glance/trusts.js';
import { createApp } from './http/app.js';
import { inspectStored } from './ingest/content/inspect.js';
import { GuardedStore } from './ingest/guarded-store.js';
import { Reservations } from './ingest/reservations.js';
import { identify, Preflight } from './ingest/preflight.js';
import { createTusServer, TUS_PATH } from './ingest/tus-server.js';
import { Uploads } from './ingest/uploads.js';
import type { Logger } from './logger.js';
import { Metrics } from './observability/metrics.js';
import { newInstanceId } from './state/lease.js';
import type { UploadEvents } from './state/upload-events.js';
import { PushTokens } from './transfer/push-tokens.js';
import { Pusher } from './transfer/pusher.js';
import { Trusts } from './transfer/trusts.js';

export interface Gateway {
  server: http.Server;
  uploads: Uploads;
  pusher: Pusher;
  events: UploadEvents;
  /** This process as the owner of push leases (records name it), new at every start. */
  instanceId: string;
  /** Resolves once listening; `port` is then the real one (config port 0 picks a free one). */
  listen(): Promise<{ port: number }>;
  /** Stop taking requests, let running PATCHes finish for a grace period, abort pushes. */
  close(): Promise<void>;
}

const EXPIRY_SWEEP_MS = 60 * 60_000;
const ADOPT_EVERY_MS = 15_000;

/** Wire the layers: HTTP -> ingest (tus) -> transfer (push) -> Glance client. */
export async function createGateway(config: Config, logger: Logger): Promise<Gateway> {
  const instanceId = newInstanceId(); // this process, as the owner of push leases and the origin of its events
  const backends = await createBackends(config, { instanceId, logger });
  const { data, state: store, tokens, events } = backends;
  const glance = new GlanceClient();
  const keystone = new Keystone(config.keystone.authUrl);
  const endpoints: EndpointResolver = config.glanceUrl
    ? new StaticEndpoint(config.glanceUrl)
    : new CatalogEndpoint(config.keystone.interface, config.keystone.region);
  const reservations = new Reservations(() => data.capacity(), config.limits);

  // tus writes through the gateway's rules; the push reads the data underneath.
  const files = new GuardedStore(data, {
    expiryMs: config.uploadExpiryMs,
    describe: async (id) => {
      const record = await store.get(id);
      return record?.state === 'receiving' ? { diskFormat: record.diskFormat, size: record.size } : undefined;
    },
  });
  // A disk_format switched in Glance after the upload: the whole stored file is judged again.
  const recheck = async (id: string, diskFormat: string, size: number) => {
    const verdict = await inspectStored(diskFormat, size, (start, length) => data.readRange(id, start, length));
    return verdict.kind === 'reject' ? verdict.reason : null;
  };
  const server = http.createServer();
  const metrics = new Metrics({ events, queueDepth: () => pusher.queueDepth(), server });
  const trusts: Trusts = new Trusts({
    keystone: await serviceTrusts(config, logger),
    identify: (token) => identify(keystone, token),
    store,
    logger,
    withoutTrust: (reason) => metrics.uploadWithoutTrust(reason),
    granted: (id: string): Promise<void> => pusher.tokenArrived(id),
    uploadExpiryMs: config.uploadExpiryMs,
  });
  const pusher: Pusher = new Pusher(
    {
      store,
      tokens: new PushTokens(tokens, trusts),
      glance,
      files: data,
      events,
      logger,
      recheck,
      delivered: (id) => reservations.release(id),
      ended: async (id) => trusts.revoke(await store.get(id)),
      instanceId,
      queue: (worker) => backends.queue(worker),
    },
    config.push,
  );
  const uploads = new Uploads({ store, events, guard: files.guard, tokens, glance, keystone, files, pusher, reservations, trusts, logger, instanceId });
  // What the store does reaches the records as events (Uploads is built after the store it listens to).
  files.events.on('writing', (id) => reservations.resume(id));
  files.events.on('stored', (id, offset) => uploads.stored(id, offset));
  files.events.on('removed', (id) => uploads.forget(id));

  const preflight = new Preflight({ glance, keystone, endpoints, reservations });
  const tus = createTusServer({
    files,
    locker: backends.locker,
    preflight,
    uploads,
    logger,
    maxUploadSize: config.maxUploadSize,
    allowedOrigins: config.allowedOrigins,
  });

  const health = {
    storage: backends.checkStorage,
    state: backends.checkState,
    // Every request needs Keystone; in catalog mode there is no fixed Glance to ask besides.
    glance: async () => {
      await glance.ping(config.keystone.authUrl);
      if (config.glanceUrl) await glance.ping(`${config.glanceUrl}/versions`);
    },
  };
  files.events.on('written', (bytes) => metrics.bytesReceived(bytes));
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
  server.on('clientError', answerClientError);
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
  // A push whose instance died (its lease lapsed) is taken over by whichever instance looks first.
  const adoption = setInterval(() => {
    pusher.recovery.adopt().catch((err: unknown) => logger.warn({ err }, 'looking for pushes nobody runs failed'));
  }, ADOPT_EVERY_MS).unref();

  return {
    server,
    uploads,
    pusher,
    events,
    instanceId,
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
      clearInterval(adoption);
      reservations.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      events.shutdown(); // event streams end now rather than hold the grace period
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs);
      await pusher.close();
      await closed;
      clearTimeout(grace);
      await trusts.idle();
      await Promise.all([glance.close(), keystone.close(), trusts.close()]);
      await backends.close();
    },
  };
}

const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};
const LINGER_MS = 2000;
const answered = new WeakSet<Duplex>();

/**
 * Node's own answer to a request it cannot parse, but closed gracefully. Node writes the answer
 * and destroys the socket at once: with the rest of an oversized header still unread, that close
 * is a TCP reset, which can reach the client before it reads the 431. Here the answer ends our
 * side, what the client still sends is read and dropped, and the socket goes once the client
 * closes (or after LINGER_MS).
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (answered.has(socket)) return; // the parser reports its error again, at the end of the input
  answered.add(socket);
  const answer = `HTTP/1.1 ${CLIENT_ERROR_ANSWERS[err.code ?? ''] ?? '400 Bad Request'}\r\nConnection: close\r\n\r\n`;
  const inFlight = (socket as { _httpMessage?: http.ServerResponse | null })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight) {
    // A response is under way (or the socket is gone): as Node does, answer only if that
    // response has not started, and close at once.
    if (socket.writable && !inFlight?.headersSent) socket.write(answer);
    socket.destroy();
    return;
  }
  socket.end(answer);
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('end', () => socket.destroy());
  socket.once('close', () => clearTimeout(linger));
}

/**
 * The service user's trusts, its credentials proven at start: refused ones stop the process with
 * one line naming the variable; a Keystone that cannot be asked now is asked again later.
 */
async function serviceTrusts(config: Config, logger: Logger): Promise<KeystoneTrusts | undefined> {
  if (!config.service) return undefined;
  const trusts = new KeystoneTrusts(config.keystone.authUrl, config.service);
  try {
    await trusts.serviceUserId();
  } catch (err) {
    if (err instanceof ServiceCredentialsError) {
      await trusts.close();
      const { name, domainName } = config.service;
      throw new ConfigError(`invalid SERVICE_PASSWORD: Keystone refused the service user ${name} of domain ${domainName} (${err.message})`);
    }
    logger.warn({ err }, 'the service user could not be checked now: Keystone is not reachable');
  }
  return trusts;
}
