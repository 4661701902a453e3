// The gateway killed (SIGKILL) or stopped (SIGTERM) mid-PATCH and mid-push.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FakeGlance } from './support/fake-glance.js';
import { makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { spawnGateway, type GatewayProcess } from './support/gateway-process.js';
import { create, meta, TUS } from './support/http.js';
import { patchWith, trickle } from './support/slow-body.js';
import { tusUpload } from './support/tus.js';

let glance: FakeGlance;
let dir: string;
let file: { path: string; sha256: string };
const SIZE = 24 * MiB;

before(async () => {
  glance = await FakeGlance.start();
  dir = await tempDir('gw-crash-');
  file = await makeFile(dir, 'disk.raw', SIZE);
});
after(async () => {
  await glance.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function gatewayOn(storage: string): Promise<GatewayProcess> {
  return spawnGateway({ GLANCE_URL: glance.url, STORAGE_DIR: storage, PUSH_RETRY_BASE_MS: '100', PUSH_RETRY_MAX_MS: '400', SHUTDOWN_GRACE_MS: '1000' });
}

async function newUpload(gateway: GatewayProcess): Promise<{ id: string; imageId: string }> {
  const image = glance.createImage('project-a');
  const created = await create(gateway.url, { 'x-auth-token': 'token-a', 'upload-length': String(SIZE), 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(created.status, 201);
  return { id: created.headers.get('location')!.split('/').pop()!, imageId: image.id };
}

async function headOffset(gateway: GatewayProcess, id: string): Promise<number> {
  const res = await fetch(`${gateway.url}/files/${id}`, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.equal(res.status, 200);
  return Number(res.headers.get('upload-offset'));
}

/** The stored prefix must be exactly the file's first bytes. */
async function assertStoredPrefix(storage: string, id: string, offset: number): Promise<void> {
  const stored = await fsp.readFile(path.join(storage, 'uploads', id));
  assert.equal(stored.length, offset, 'the offset is what is on disk');
  const original = (await fsp.readFile(file.path)).subarray(0, offset);
  assert.ok(stored.equals(original), 'no torn or duplicated bytes');
}

async function resume(gateway: GatewayProcess, id: string): Promise<void> {
  await tusUpload(gateway.url, file.path, { token: 'token-a', metadata: {}, endpoint: `${gateway.url}/files/`, uploadUrl: `${gateway.url}/files/${id}` });
}

test('SIGKILL mid-PATCH: after the restart HEAD tells the true offset, the client resumes, active with equal hashes', { timeout: 120_000 }, async () => {
  const storage = path.join(dir, 'kill-patch');
  let gateway = await gatewayOn(storage);
  const { id, imageId } = await newUpload(gateway);
  const slow = trickle(file.path, 0, SIZE, 256 * 1024, 10);
  const pending = patchWith(`${gateway.url}/files/${id}`, 'token-a', 0, SIZE, slow.body).catch((err: Error) => err);
  await slow.sent(6 * MiB);
  await gateway.stop('SIGKILL');
  assert.ok((await pending) instanceof Error, 'the PATCH was cut');

  gateway = await gatewayOn(storage);
  try {
    const offset = await headOffset(gateway, id);
    assert.ok(offset > 0 && offset < SIZE, `offset ${offset}`);
    await assertStoredPrefix(storage, id, offset);
    await resume(gateway, id);
    const { status } = await waitForState(gateway.url, `/files/${id}`, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
    assert.equal(glance.puts.filter((p) => p.imageId === imageId).at(-1)!.sha256, file.sha256);
  } finally {
    await gateway.stop();
  }
});

/** Upload completely, then SIGKILL the gateway while its (slowed) PUT is under way. */
async function killDuringPush(storage: string): Promise<{ id: string; imageId: string }> {
  const gateway = await gatewayOn(storage);
  const { id, imageId } = await newUpload(gateway);
  glance.failNextPuts({ kind: 'slow', bytesPerSecond: 1 * MiB });
  await resume(gateway, id);
  await waitUntil(() => glance.puts.some((p) => p.imageId === imageId && p.bytes > 0), 'the PUT is under way');
  await gateway.stop('SIGKILL');
  await waitUntil(() => glance.image(imageId)!.status === 'queued', 'Glance puts the image back to queued');
  return { id, imageId };
}

test('SIGKILL mid-push: the restarted gateway waits for a token, then pushes again (image back to queued)', { timeout: 120_000 }, async () => {
  const storage = path.join(dir, 'kill-push');
  const { id, imageId } = await killDuringPush(storage);
  const gateway = await gatewayOn(storage);
  try {
    const persisted = JSON.parse(await fsp.readFile(path.join(storage, 'state', `${id}.json`), 'utf8')) as { state: string };
    assert.equal(persisted.state, 'awaiting_token', 'no token survives a restart');
    const { status } = await waitForState(gateway.url, `/files/${id}`, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
    assert.equal(glance.puts.filter((p) => p.imageId === imageId).at(-1)!.sha256, file.sha256);
  } finally {
    await gateway.stop();
  }
});

test('SIGKILL mid-push with the image left saving: the push waits, then runs once Glance frees it', { timeout: 120_000 }, async () => {
  const storage = path.join(dir, 'kill-saving');
  const { id, imageId } = await killDuringPush(storage);
  glance.setImage(imageId, { status: 'saving' }); // as when glance-api itself died mid-upload
  const gateway = await gatewayOn(storage);
  try {
    const waiting = await waitForState(gateway.url, `/files/${id}`, 'token-a', ['retrying', 'active', 'failed']);
    assert.equal(waiting.status.state, 'retrying');
    assert.equal(waiting.status.error?.code, 'image_busy');
    glance.setImage(imageId, { status: 'queued' });
    const { status } = await waitForState(gateway.url, `/files/${id}`, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
  } finally {
    await gateway.stop();
  }
});

test('SIGTERM during an upload and a push: clean exit, nothing half-written, both finish after the start', { timeout: 120_000 }, async () => {
  const storage = path.join(dir, 'term');
  let gateway = await gatewayOn(storage);
  const pushing = await newUpload(gateway);
  glance.failNextPuts({ kind: 'slow', bytesPerSecond: 1 * MiB });
  await resume(gateway, pushing.id);
  await waitUntil(() => glance.puts.some((p) => p.imageId === pushing.imageId && p.bytes > 0), 'the PUT is under way');

  const receiving = await newUpload(gateway);
  const slow = trickle(file.path, 0, SIZE, 256 * 1024, 10);
  const pending = patchWith(`${gateway.url}/files/${receiving.id}`, 'token-a', 0, SIZE, slow.body).catch((err: Error) => err);
  await slow.sent(4 * MiB);

  assert.equal(await gateway.stop('SIGTERM'), 0, 'a clean exit');
  await pending;
  const stateFiles = await fsp.readdir(path.join(storage, 'state'));
  assert.deepEqual(stateFiles.sort(), [`${pushing.id}.json`, `${receiving.id}.json`].sort(), 'no temporary files left');
  for (const name of stateFiles) JSON.parse(await fsp.readFile(path.join(storage, 'state', name), 'utf8'));

  gateway = await gatewayOn(storage);
  try {
    const offset = await headOffset(gateway, receiving.id);
    await assertStoredPrefix(storage, receiving.id, offset);
    await resume(gateway, receiving.id);
    for (const { id, imageId } of [pushing, receiving]) {
      const { status } = await waitForState(gateway.url, `/files/${id}`, 'token-a', ['active', 'failed']);
      assert.equal(status.state, 'active');
      assert.equal(glance.puts.filter((p) => p.imageId === imageId).at(-1)!.sha256, file.sha256);
    }
  } finally {
    await gateway.stop();
  }
});

async function waitUntil(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

