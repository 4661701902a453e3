// Starts the gateway in this process on 127.0.0.1 and a free port, with its logs captured.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/logger.js';
import type { UploadStatus } from '../../src/ingest/uploads.js';
import { withKeystone } from './gateway-process.js';

export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString().split('\n').filter(Boolean));
    done();
  }
}

export interface TestGateway {
  url: string;
  gateway: Gateway;
  storageDir: string;
  logs: LogCapture;
  close(): Promise<void>;
}

export async function tempDir(prefix = 'gw-test-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Fast retries by default so fault tests take seconds; any variable can be overridden. */
export async function startGateway(env: Record<string, string> = {}, storageDir?: string): Promise<TestGateway> {
  const dir = storageDir ?? (await tempDir());
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    STORAGE_DIR: dir,
    LOG_LEVEL: 'debug',
    PUSH_RETRY_BASE_MS: '100',
    PUSH_RETRY_MAX_MS: '400',
    SHUTDOWN_GRACE_MS: '500',
    ...withKeystone(env),
  });
  const logs = new LogCapture();
  const gateway = await createGateway(config, createLogger(config.logLevel, logs));
  const { port } = await gateway.listen();
  return {
    url: `http://127.0.0.1:${port}`,
    gateway,
    storageDir: dir,
    logs,
    close: () => gateway.close(),
  };
}

export async function getStatus(url: string, uploadUrl: string, token: string): Promise<UploadStatus> {
  const res = await fetch(new URL(`${uploadUrl}/status`, url), { headers: { 'x-auth-token': token } });
  if (res.status !== 200) throw new Error(`status answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as UploadStatus;
}

/** Poll the status until it reaches `state`; records every state seen on the way. */
export async function waitForState(
  url: string,
  uploadUrl: string,
  token: string,
  state: string | string[],
  timeoutMs = 30_000,
): Promise<{ status: UploadStatus; seen: string[] }> {
  const wanted = Array.isArray(state) ? state : [state];
  const seen: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await getStatus(url, uploadUrl, token);
    if (seen.at(-1) !== status.state) seen.push(status.state);
    if (wanted.includes(status.state)) return { status, seen };
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${wanted.join('|')}; states seen: ${seen.join(' -> ')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Ids of the upload records a gateway holds for an image (one JSON file each under state/). */
export async function uploadIdsForImage(storageDir: string, imageId: string): Promise<string[]> {
  const stateDir = path.join(storageDir, 'state');
  const ids: string[] = [];
  for (const name of await fsp.readdir(stateDir)) {
    if (!name.endsWith('.json')) continue;
    const record = JSON.parse(await fsp.readFile(path.join(stateDir, name), 'utf8')) as { id: string; imageId: string };
    if (record.imageId === imageId) ids.push(record.id);
  }
  return ids;
}
