import { Router } from 'express';

export interface HealthChecks {
  /** Each resolves when healthy and rejects with a short reason otherwise. */
  storage(): Promise<void>;
  glance(): Promise<void>;
}

/** `/healthz`: the process answers. `/readyz`: storage is writable and Glance (or Keystone) answers. */
export function healthRoutes(checks: HealthChecks): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const [storage, glance] = await Promise.allSettled([checks.storage(), checks.glance()]);
    const report = (r: PromiseSettledResult<void>) => (r.status === 'fulfilled' ? 'ok' : String((r.reason as Error).message ?? r.reason));
    const ready = storage.status === 'fulfilled' && glance.status === 'fulfilled';
    res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'unavailable', storage: report(storage), glance: report(glance) });
  });
  return router;
}
