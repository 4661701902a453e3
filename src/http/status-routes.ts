import { Router, type NextFunction, type Request, type Response } from 'express';
import { NotFoundError } from '../errors.js';
import type { Access, Uploads, UploadStatus } from '../ingest/uploads.js';
import type { Pusher } from '../transfer/pusher.js';
import type { UploadEvent, UploadEvents } from '../state/upload-events.js';
import { isUploadId, tokenOf } from './request.js';

const PROGRESS_INTERVAL_MS = 250; // the contract's "at most 4 progress events a second"
const HEARTBEAT_MS = 15_000;

/** Often enough that an idle event stream is never cut by the server's socket idle timeout. */
const heartbeatEvery = (idleTimeoutMs = Infinity): number => Math.min(HEARTBEAT_MS, Math.floor(idleTimeoutMs / 3));

type Handler = (req: Request, res: Response, id: string) => Promise<void>;

/** `GET /files/{id}/status`, `GET /files/{id}/events` (SSE) and `POST /files/{id}/push`. */
export function statusRoutes(uploads: Uploads, pusher: Pusher, events: UploadEvents, mount: string, idleTimeoutMs?: number): Router {
  const router = Router();
  const heartbeatMs = heartbeatEvery(idleTimeoutMs);

  // Every route here answers only to a token that can see the upload's image.
  const authorized = (access: Access, handler: Handler) => async (req: Request, res: Response, next: NextFunction) => {
    try {
      const id = req.params.id;
      if (!isUploadId(id)) throw new NotFoundError('upload not found');
      await uploads.authorize(id, tokenOf(req), access);
      await handler(req, res, id);
    } catch (err) {
      next(err);
    }
  };

  router.get(`${mount}/:id/status`, authorized('watch', async (_req, res, id) => {
    res.set('Cache-Control', 'no-store').json(await uploads.status(id));
  }));

  router.post(`${mount}/:id/push`, authorized('push', async (_req, res, id) => {
    const record = await pusher.restart(id);
    res.status(202).json(await uploads.view(record));
  }));

  router.get(`${mount}/:id/events`, authorized('watch', async (req, res, id) => {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no', // nginx: pass events through at once
    });
    streamStatus(req, res, id, uploads, events, heartbeatMs);
  }));

  return router;
}

/** Send the status now, on every state change, and on progress at most every 250 ms. */
function streamStatus(req: Request, res: Response, id: string, uploads: Uploads, events: UploadEvents, heartbeatMs: number): void {
  let lastProgressAt = 0;
  let trailing: NodeJS.Timeout | undefined;
  let closed = false;

  const send = async (event: string) => {
    let status: UploadStatus;
    try {
      status = await uploads.status(id);
    } catch {
      return close('removed');
    }
    if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify(status)}\n\n`);
  };
  const close = (event?: string) => {
    if (closed) return;
    if (event) res.write(`event: ${event}\ndata: {"id":"${id}"}\n\n`);
    closed = true;
    cleanup();
    res.end();
  };
  const onEvent = (event: UploadEvent) => {
    if (event.kind === 'removed') return close('removed');
    if (event.kind === 'shutdown') return close();
    if (event.kind === 'state') {
      clearTimeout(trailing);
      trailing = undefined;
      lastProgressAt = Date.now();
      return void send('status');
    }
    const wait = lastProgressAt + PROGRESS_INTERVAL_MS - Date.now();
    if (wait <= 0) {
      lastProgressAt = Date.now();
      void send('progress');
    } else if (!trailing) {
      trailing = setTimeout(() => {
        trailing = undefined;
        lastProgressAt = Date.now();
        void send('progress');
      }, wait);
    }
  };

  const unsubscribe = events.subscribe(id, onEvent);
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
  const cleanup = () => {
    unsubscribe();
    clearInterval(heartbeat);
    clearTimeout(trailing);
  };
  req.on('close', () => {
    closed = true;
    cleanup();
  });
  void send('status');
}
