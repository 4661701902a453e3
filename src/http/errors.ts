import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { httpError, NotFoundError, toHttpError } from '../errors.js';
import type { Logger } from '../logger.js';

export function sendError(res: Response, err: unknown): void {
  const { status, body } = toHttpError(err);
  res.status(status).json(body);
}

export const notFound: RequestHandler = (_req, res) => sendError(res, new NotFoundError('no such resource'));

/** Last handler: every error leaves as the contract's JSON body, never as a stack trace. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    const http = toHttpError(err);
    if (http.status >= 500) logger.error({ err }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // Body-parser style errors carry their own 4xx status.
    const own = (err as { status?: unknown }).status;
    const { status, body } =
      http.status === 500 && typeof own === 'number' && own >= 400 && own < 500 ? httpError('bad_request', 'malformed request', own) : http;
    res.status(status).json(body);
  };
}
