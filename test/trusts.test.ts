// With a service user, every upload holds a Keystone trust from its uploader: its push finishes
// with no client at all (after a SIGKILL and a revoked token, or a token revoked while it waits),
// and the trust is deleted however the upload ends. A token Keystone will not make a trust with
// (an application credential's) works as it does without a service user. Real Keystone and Glance.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { glanceHashes, makeFile, MiB } from './support/files.js';
import { ROOT, spawnGateway } from './support/gateway-process.js';
import { getStatus, startGateway, tempDir, type TestGateway, waitForState } from './support/gateway.js';
import { meta, TUS } from './support/http.js';
import {
  applicationCredentialToken,
  createTrust,
  ensureStack,
  getImage,
  issueToken,
  revokeToken,
  type Scoped,
  serviceTrusts,
  type StackEnv,
} from './support/openstack.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { tusUpload } from './support/tus.js';

let stack: Awaited<ReturnType<typeof ensureStack>>;
let env: StackEnv;
let work: string;
let file: { path: string; sha256: string };
let hashes: { md5: string; sha512: string };
/** A token of the demo user that no test revokes: for looking at Glance, never sent to a gateway. */
let observer: Scoped;
let proxy: TcpProxy;

before(
  async () => {
    stack = await ensureStack();
    env = stack.env;
    work = await tempDir('gw-trusts-');
    file = await makeFile(work, 'disk.raw', 6 * MiB);
    hashes = await glanceHashes(file.path);
    observer = await issueToken(env, env.OS_USERNAME, env.OS_PASSWORD, env.OS_PROJECT_NAME);
    proxy = await TcpProxy.start(env.GLANCE_URL); // slows the pushes on demand
  },
  { timeout: 900_000 },
);
after(async () => {
  await proxy?.stop();
  await fsp.rm(work, { recursive: true, force: true });
  await stack?.stop();
});

/** A gateway with the service user, pushing through the proxy, stored-then-pushed (no streaming push). */
function gatewayEnv(dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    GLANCE_URL: proxy.url,
    OS_AUTH_URL: env.OS_AUTH_URL,
    SERVICE_USERNAME: env.SERVICE_USERNAME,
    SERVICE_PASSWORD: env.SERVICE_PASSWORD,
    STORAGE_DIR: dir,
    PUSH_STREAMING: '0',
    ...extra,
  };
}

const freshUser = () => issueToken(env, env.OS_USERNAME, env.OS_PASSWORD, env.OS_PROJECT_NAME);
const metadata = (name: string) => ({ name, disk_format: 'raw', container_format: 'bare', visibility: 'private' });
const idOf = (uploadUrl: string) => uploadUrl.split('/').pop()!;

async function recordOf(dir: string, uploadId: string): Promise<{ state: string; imageId: string; trust?: { id?: string; none?: string } | null }> {
  return JSON.parse(await fsp.readFile(path.join(dir, 'state', `${uploadId}.json`), 'utf8'));
}

/** The running test's gateway log, shown when a wait times out. */
let gatewayLog: () => string[] = () => [];

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the gateway logged:\n${gatewayLog().slice(-40).join('\n')}`);
    await sleep(100);
  }
}

/** A tus creation without data: the upload's URL. */
async function createUpload(gw: TestGateway, user: Scoped, name: string, length: number): Promise<string> {
  const res = await fetch(`${gw.url}/files/`, {
    method: 'POST',
    headers: { ...TUS, 'x-auth-token': user.token, 'upload-length': String(length), 'upload-metadata': meta(metadata(name)) },
  });
  assert.equal(res.status, 201, await res.text());
  return new URL(res.headers.get('location')!, gw.url).toString();
}

/** The trust id the gateway recorded for the upload, once granted. */
const trustOf = (dir: string, uploadId: string) =>
  until('the trust', async () => (await recordOf(dir, uploadId)).trust?.id);

const trustGone = (trustId: string) => until('the trust to be deleted', async () => !(await serviceTrusts(env)).includes(trustId));

/** Glance's own view, with a token no gateway ever saw: active with the file's bytes. */
async function assertActiveInGlance(imageId: string): Promise<void> {
  const image = await until('the image to be active', async () => {
    const seen = await getImage(env, observer.token, imageId);
    return seen.status === 'active' && seen;
  }, 120_000);
  assert.equal(image.size, 6 * MiB);
  assert.equal(image.os_hash_value, hashes.sha512, 'Glance holds exactly the uploaded bytes');
}

/** No password, and nothing shaped like a Keystone token (the trust-scoped ones included), in the logs or under `dir`. */
async function assertNoSecret(lines: string[], dir: string): Promise<void> {
  const secret = (text: string) => text.includes(env.SERVICE_PASSWORD) || /gAAAAA[\w-]{40,}/.test(text);
  assert.ok(!lines.some(secret), 'no log line holds a token or the service password');
  for (const name of await fsp.readdir(path.join(dir, 'state'))) {
    assert.ok(!secret(await fsp.readFile(path.join(dir, 'state', name), 'utf8')), `${name} holds no token`);
  }
}

test('service user credentials that Keystone refuses stop the process with one line naming the variable', { timeout: 60_000 }, async () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...gatewayEnv(await tempDir('gw-trust-badpw-')), PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', SERVICE_PASSWORD: 'not-the-password' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(run.status, 2, run.stderr);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, /^configuration error: invalid SERVICE_PASSWORD: Keystone refused the service user gateway/);
  assert.ok(!run.stderr.includes('not-the-password') && !run.stdout.includes('not-the-password'), 'the password is not shown');
});

describe('pushes that finish without the client', () => {
  test('SIGKILL mid-push, then the uploader token revoked: the restarted gateway finishes alone, and deletes the trust', { timeout: 300_000 }, async () => {
    const dir = await tempDir('gw-trust-kill-');
    const uploader = await freshUser();
    proxy.setRate(512 * 1024);
    let gw = await spawnGateway(gatewayEnv(dir, { LOG_LEVEL: 'debug' }));
    const output = [...gw.output];
    gatewayLog = () => [...output, ...gw.output];
    try {
      const { uploadUrl } = await tusUpload(gw.url, file.path, { token: uploader.token, metadata: metadata('trust-after-kill') });
      const id = idOf(uploadUrl);
      const trustId = await trustOf(dir, id);
      assert.ok((await serviceTrusts(env)).includes(trustId), 'Keystone holds the trust');
      const status = await getStatus(gw.url, new URL(uploadUrl).pathname, uploader.token);
      assert.equal(status.unattended, true);
      await until('the push to be under way', async () => (await getStatus(gw.url, new URL(uploadUrl).pathname, uploader.token)).pushed > MiB);

      await gw.stop('SIGKILL');
      output.push(...gw.output);
      await revokeToken(env, uploader.token);
      proxy.setRate(null);
      gw = await spawnGateway(gatewayEnv(dir, { LOG_LEVEL: 'debug' }));
      // Not one request reaches the gateway from here on.
      const { imageId } = await recordOf(dir, id);
      await assertActiveInGlance(imageId);
      await until('the record to be active', async () => (await recordOf(dir, id)).state === 'active');
      await trustGone(trustId);
      await gw.stop();
      output.push(...gw.output);
      await assertNoSecret(output, dir);
    } finally {
      proxy.setRate(null);
      await gw.stop('SIGKILL');
    }
  });

  test('a token revoked while its upload waits for a push slot: the trust carries the push to active', { timeout: 300_000 }, async () => {
    const dir = await tempDir('gw-trust-queue-');
    const first = await freshUser();
    const second = await freshUser();
    const gw = await startGateway(gatewayEnv(dir, { PUSH_CONCURRENCY: '1' }));
    gatewayLog = () => gw.logs.lines;
    try {
      proxy.setRate(512 * 1024);
      const a = await tusUpload(gw.url, file.path, { token: first.token, metadata: metadata('trust-slot-holder') });
      await waitForState(gw.url, new URL(a.uploadUrl).pathname, first.token, ['pushing'], 30_000);
      const b = await tusUpload(gw.url, file.path, { token: second.token, metadata: metadata('trust-queued') });
      const bId = idOf(b.uploadUrl);
      const states: string[] = [];
      gw.gateway.events.subscribe(bId, (event) => event.kind === 'state' && states.push(event.record.state));
      const trustId = await trustOf(dir, bId);
      assert.equal((await recordOf(dir, bId)).state, 'queued', 'behind the slow push');
      await revokeToken(env, second.token);
      proxy.setRate(null);

      await assertActiveInGlance((await recordOf(dir, bId)).imageId);
      await until('the upload to be active', async () => (await gw.gateway.uploads.status(bId)).state === 'active');
      assert.ok(gw.logs.lines.some((l) => l.includes(bId) && l.includes('Glance refused the token; the push goes on with another')));
      assert.ok(!states.includes('awaiting_token'), `never waited for a token: ${states.join(' → ')}`);
      await trustGone(trustId);
      await assertNoSecret(gw.logs.lines, dir);
    } finally {
      proxy.setRate(null);
      await gw.close();
    }
  });
});

describe('a token Keystone makes no trust with', () => {
  test('an application credential token: the upload ends active without a trust, and a restart mid-push waits for the client', { timeout: 300_000 }, async () => {
    const dir = await tempDir('gw-trust-appcred-');
    const client = await applicationCredentialToken(env, await freshUser());
    const before = await serviceTrusts(env);
    let gw: TestGateway = await startGateway(gatewayEnv(dir));
    gatewayLog = () => gw.logs.lines;
    try {
      proxy.setRate(512 * 1024);
      const { uploadUrl } = await tusUpload(gw.url, file.path, { token: client.token, metadata: metadata('trust-appcred') });
      const id = idOf(uploadUrl);
      const refused = await until('the refusal', async () => (await recordOf(dir, id)).trust?.none);
      assert.match(refused, /Keystone makes no trust: the token comes from an application credential/);
      const status = await getStatus(gw.url, new URL(uploadUrl).pathname, client.token);
      assert.equal(status.unattended, false);
      assert.match(status.unattendedReason ?? '', /application credential/);
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      assert.match(metrics, /gateway_uploads_without_trust_total\{reason="refused"\} [1-9]/);
      assert.deepEqual((await serviceTrusts(env)).filter((t) => !before.includes(t)), [], 'no trust was made');
      await until('the push to be under way', async () => (await gw.gateway.uploads.status(id)).pushed > 0);

      await gw.close(); // mid-push
      proxy.setRate(null);
      gw = await startGateway(gatewayEnv(dir), dir);
      assert.equal((await gw.gateway.uploads.status(id)).state, 'awaiting_token', 'as without a service user');
      await sleep(1_000);
      assert.equal((await gw.gateway.uploads.status(id)).state, 'awaiting_token', 'nothing moves without the client');

      const head = await fetch(uploadUrl.replace(/^http:\/\/[^/]+/, gw.url), { method: 'HEAD', headers: { ...TUS, 'x-auth-token': client.token } });
      assert.equal(head.status, 200);
      await assertActiveInGlance((await recordOf(dir, id)).imageId);
    } finally {
      proxy.setRate(null);
      await gw.close();
    }
  });
});

describe('the trust goes however the upload ends', () => {
  test('failed (past its retry budget), terminated, expired', { timeout: 300_000 }, async () => {
    const dir = await tempDir('gw-trust-ends-');
    const user = await freshUser();
    const gw = await startGateway(gatewayEnv(dir, { PUSH_MAX_ATTEMPTS: '1', UPLOAD_EXPIRY_HOURS: String(3 / 3600) }));
    gatewayLog = () => gw.logs.lines;
    try {
      // Failed: Glance unreachable for the only attempt.
      const failedUrl = await createUpload(gw, user, 'trust-failed', 6 * MiB);
      const failedTrust = await trustOf(dir, idOf(failedUrl));
      proxy.setFaults({ cutEvery: [1, 2] }); // every connection to Glance breaks at its first byte
      await tusUpload(gw.url, file.path, { token: user.token, metadata: {}, uploadUrl: failedUrl });
      await waitForState(gw.url, new URL(failedUrl).pathname, user.token, ['failed'], 60_000);
      proxy.setFaults({});
      await trustGone(failedTrust);

      // Terminated.
      const doomedUrl = await createUpload(gw, user, 'trust-terminated', MiB);
      const doomedTrust = await trustOf(dir, idOf(doomedUrl));
      assert.equal((await fetch(doomedUrl, { method: 'DELETE', headers: { ...TUS, 'x-auth-token': user.token } })).status, 204);
      await trustGone(doomedTrust);

      // Expired: nobody comes back; the sweep removes it.
      const idleTrust = await trustOf(dir, idOf(await createUpload(gw, user, 'trust-expired', MiB)));
      await trustGone(idleTrust);
      await assertNoSecret(gw.logs.lines, dir);
    } finally {
      proxy.setFaults({});
      await gw.close();
    }
  });

  test('a trust no upload holds (left by a crash) is deleted at the next start', { timeout: 120_000 }, async () => {
    const user = await freshUser();
    // Granted 20 minutes ago, as the gateway dates its trusts: the upload's expiry (72 h) plus a day, from then.
    const orphan = await createTrust(env, user, new Date(Date.now() + 96 * 3600_000 - 20 * 60_000));
    assert.ok((await serviceTrusts(env)).includes(orphan));
    const gw = await startGateway(gatewayEnv(await tempDir('gw-trust-orphan-')));
    gatewayLog = () => gw.logs.lines;
    try {
      await trustGone(orphan);
    } finally {
      await gw.close();
    }
  });
});
