import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Router, type Response } from 'express';
import type { Logger } from '../logger.js';

/** The files of the page, beside this module (`npm run build` copies them into dist). */
const PAGE_DIR = fileURLToPath(new URL('./ui/', import.meta.url));
const PAGE_FILES = ['index.html', 'app.js', 'style.css'];
/** The gateway's content inspection (pure modules), which the page imports for its disk format guess. */
const CONTENT_DIR = fileURLToPath(new URL('../ingest/content/', import.meta.url));

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
  router.get('/', (_req, res) => send(res, `${dir}index.html`));
  router.get('/ui/app.js', (_req, res) => send(res, `${dir}app.js`));
  router.get('/ui/style.css', (_req, res) => send(res, `${dir}style.css`));
  router.get('/ui/tus.min.js', (_req, res) => send(res, tus));
  const content = contentModules();
  router.get('/ui/content/:file', async (req, res, next) => {
    const module = content.get(req.params.file);
    if (!module) return next();
    try {
      res.set(PAGE_HEADERS).type('text/javascript').send(await module());
    } catch (err) {
      next(err);
    }
  });
  return router;
}

/**
 * Each module of CONTENT_DIR by its name as the page imports it (`magic.js`). Built, they are
 * JavaScript already; run from the sources (tsx), each is compiled once, on its first request,
 * by TypeScript, which is then at hand as a development dependency.
 */
function contentModules(): Map<string, () => Promise<string>> {
  const names = fs.existsSync(CONTENT_DIR) ? fs.readdirSync(CONTENT_DIR) : [];
  const built = names.filter((n) => n.endsWith('.js'));
  const modules = new Map<string, () => Promise<string>>();
  if (built.length) {
    for (const name of built) modules.set(name, once(() => fsp.readFile(CONTENT_DIR + name, 'utf8')));
    return modules;
  }
  for (const name of names.filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts'))) {
    modules.set(name.replace(/\.ts$/, '.js'), once(async () => {
      const { default: ts } = await import('typescript');
      const source = await fsp.readFile(CONTENT_DIR + name, 'utf8');
      const options = { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 };
      return ts.transpileModule(source, { compilerOptions: options, fileName: name }).outputText;
    }));
  }
  return modules;
}

/** `make` run once; a failure is not kept, so the next request tries again. */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    if (!made) {
      made = make();
      made.catch(() => (made = undefined));
    }
    return made;
  };
}

function tusBundle(): string | undefined {
  try {
    const file = createRequire(import.meta.url).resolve('tus-js-client/dist/tus.min.js');
    return fs.existsSync(file) ? file : undefined;
  } catch {
    return undefined;
  }
}
