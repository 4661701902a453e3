import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Router, type Response } from 'express';
import type { Logger } from '../logger.js';

/** The files of the page, beside this module (`npm run build` copies them into dist). */
const PAGE_DIR = fileURLToPath(new URL('./ui/', import.meta.url));
const PAGE_FILES = ['index.html', 'app.js', 'style.css'];

/** The page holds a token: scripts and styles only from here; fetch may reach Keystone elsewhere. */
const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' http: https:; " +
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache',
};

/**
 * The browser page: `GET /` and its assets under `/ui/` (plain files, no build step), with
 * tus-js-client's browser bundle from node_modules. Missing files leave the routes out, with a warning.
 */
export function uiRoutes(logger: Logger): Router {
  const router = Router();
  const dir = PAGE_FILES.every((f) => fs.existsSync(PAGE_DIR + f)) ? PAGE_DIR : undefined;
  const tus = tusBundle();
  if (!dir || !tus) {
    logger.warn({ pageDir: dir ?? null, tusBundle: tus ?? null }, 'browser page files not found; GET / is not served');
    return router;
  }
  const send = (res: Response, file: string) => res.set(PAGE_HEADERS).sendFile(file);
  router.get('/', (_req, res) => send(res, dir + 'index.html'));
  router.get('/ui/app.js', (_req, res) => send(res, dir + 'app.js'));
  router.get('/ui/style.css', (_req, res) => send(res, dir + 'style.css'));
  router.get('/ui/tus.min.js', (_req, res) => send(res, tus));
  return router;
}

function tusBundle(): string | undefined {
  try {
    const file = createRequire(import.meta.url).resolve('tus-js-client/dist/tus.min.js');
    return fs.existsSync(file) ? file : undefined;
  } catch {
    return undefined;
  }
}
