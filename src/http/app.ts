import type { Server } from '@tus/server';
import express from 'express';
import type { Uploads } from '../ingest/uploads.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { UploadEvents } from '../state/upload-events.js';
import type { Pusher } from '../transfer/pusher.js';
import { cors } from './cors.js';
import { errorHandler, notFound } from './errors.js';
import { healthRoutes, type HealthChecks } from './health-routes.js';
import { metricsRoutes } from './metrics-routes.js';
import { openApiRoutes } from './openapi.js';
import { oneRequestPerConnection } from './pipelining.js';
import { statusRoutes } from './status-routes.js';
import { tusRoutes } from './tus-routes.js';
import { uiRoutes } from './ui-routes.js';

export interface AppDeps {
  tus: Server;
  tusPath: string;
  uploads: Uploads;
  pusher: Pusher;
  events: UploadEvents;
  health: HealthChecks;
  metrics: Metrics;
  allowedOrigins: string[] | undefined;
  logger: Logger;
  ui?: boolean;
  /** The server's socket idle timeout: event streams send a heartbeat well within it. */
  socketIdleTimeoutMs?: number;
}

/** The HTTP surface. No body parser: tus reads PATCH bodies as streams. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(oneRequestPerConnection());
  app.use(requestLog(deps.logger));
  app.use(cors(deps.allowedOrigins, deps.tusPath));
  app.use(openApiRoutes());
  app.use(healthRoutes(deps.health));
  app.use(metricsRoutes(deps.metrics));
  app.use(statusRoutes(deps.uploads, deps.pusher, deps.events, deps.tusPath, deps.socketIdleTimeoutMs));
  app.use(tusRoutes(deps.tus, deps.uploads, deps.tusPath));
  if (deps.ui !== false) app.use(uiRoutes(deps.logger));
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}

/** One line per request; headers are not logged, so no token can be. */
function requestLog(logger: Logger): express.RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('close', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.debug({ method: req.method, url: req.originalUrl, status: res.statusCode, ms: Math.round(ms) }, 'request');
    });
    next();
  };
}
