import type { Socket } from 'node:net';
import type { RequestHandler } from 'express';

/** Per connection, the request still being answered: the next one starts when it is done. */
const running = new WeakMap<Socket, Promise<void>>();

/**
 * Node hands over requests pipelined on one connection (HTTP/1.1) at once and only orders their
 * answers; handled side by side, a HEAD sent after a PATCH would report the offset from before it.
 * This runs them one after the other, each once the previous answer finished or its connection closed.
 */
export function oneRequestPerConnection(): RequestHandler {
  return (req, res, next) => {
    const socket = req.socket;
    const previous = running.get(socket);
    const done = new Promise<void>((resolve) => {
      res.once('finish', resolve);
      res.once('close', resolve);
    });
    running.set(socket, done);
    void done.then(() => {
      if (running.get(socket) === done) running.delete(socket);
    });
    if (previous) void previous.then(() => next());
    else next();
  };
}
