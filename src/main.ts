import './gc-tuning.js'; // first: before anything allocates
import { ConfigError, loadConfig } from './config.js';
import { createGateway } from './gateway.js';
import { createLogger } from './logger.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const gateway = await createGateway(config, logger).catch((err: unknown) => {
    // Settings only Keystone can judge (the service user's credentials) are checked at start.
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`configuration error: ${err.message}\n`);
    process.exit(2);
  });
  const { port } = await gateway.listen();
  logger.info(
    {
      address: `http://${config.host}:${port}`,
      storageDir: config.storageDir,
      instance: gateway.instanceId,
      glance: config.glanceUrl ?? `from the token catalog of ${config.keystone?.authUrl}`,
    },
    `listening on ${config.host}:${port}; storage ${config.storageDir}; Glance ${config.glanceUrl ?? 'from the Keystone catalog'}`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    gateway.close().then(
      () => leave(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        leave(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * End with `code` once the event loop has drained, as a process that ends on its own does.
 * `process.exit` stops V8's worker threads before the heap: a background compile waiting for a
 * GC then never returns, and the process hangs in exit (seen on Node 24). If something still
 * holds the loop, exit anyway after a while.
 */
function leave(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), EXIT_FALLBACK_MS).unref();
}

const EXIT_FALLBACK_MS = 5_000;

// One line, like a configuration error: an unusable STORAGE_DIR, a port in use.
main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
