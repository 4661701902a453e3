import { Router } from 'express';

export interface HealthChecks {
  /** Each resolves when healthy and rejects with a short reason otherwise. */
  storage(): Promise<void>;
  glance(): Promise<void>;
  /** The shared state (Redis); always fine with local state. */
  state(): Promise<void>;
}

/** `/healthz`: the process answers. `/readyz`: storage is writable, the shared state and Glance (or Keystone) answer. */
export function healthRoutes(checks: HealthChecks): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const results = await Promise.allSettled([checks.storage(), checks.state(), checks.glance()]);
    const [storage, state, glance] = results.map((r) => (r.status === 'fulfilled' ? 'ok' : String((r.reason as Error).message ?? r.reason)));
    const ready = results.every((r) => r.status === 'fulfilled');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'unavailable', storage, state, glance });
  });
  return router;
}
