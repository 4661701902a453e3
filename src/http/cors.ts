import type { RequestHandler } from 'express';
import { EXPOSED_HEADERS } from '../ingest/tus-server.js';

/**
 * CORS for the gateway's own routes (tus routes get theirs from @tus/server with the
 * same allow-list): only listed origins get any CORS header at all.
 */
export function cors(allowedOrigins: string[] | undefined, tusPath: string): RequestHandler {
  const allowed = new Set(allowedOrigins ?? []);
  return (req, res, next) => {
    const origin = req.get('origin');
    if (!origin || !allowed.has(origin)) return next();
    res.vary('Origin');
    res.set('Access-Control-Allow-Origin', origin);
    res.set('Access-Control-Expose-Headers', EXPOSED_HEADERS.join(', '));
    // A preflight for the tus routes is tus's to answer (it knows its methods and headers).
    const tusRoute = req.path === tusPath || (req.path.startsWith(`${tusPath}/`) && req.path.split('/').length <= 3);
    if (req.method === 'OPTIONS' && req.get('access-control-request-method') && !tusRoute) {
      res.set('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
      res.set('Access-Control-Allow-Headers', 'X-Auth-Token, Content-Type, Last-Event-ID');
      res.set('Access-Control-Max-Age', '86400');
      res.status(204).end();
      return;
    }
    next();
  };
}
