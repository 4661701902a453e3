// Glance going away mid-push, briefly or for good.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FakeGlance } from './support/fake-glance.js';
import { makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState, type TestGateway } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { tusUpload } from './support/tus.js';

let glance: FakeGlance;
let gw: TestGateway;
let file: { path: string; sha256: string };

before(async () => {
  glance = await FakeGlance.start();
  gw = await startGateway({ GLANCE_URL: glance.url, PUSH_MAX_ATTEMPTS: '4', PUSH_RETRY_BASE_MS: '200', PUSH_RETRY_MAX_MS: '400' });
  file = await makeFile(await tempDir('gw-glance-'), 'disk.raw', 8 * MiB);
});
after(async () => {
  await gw.close();
  await glance.stop();
});

/** Upload, then return once the (slowed) push has started sending. */
async function pushUnderWay(): Promise<{ image: { id: string }; path: string }> {
  const image = glance.createImage('project-a');
  glance.failNextPuts({ kind: 'slow', bytesPerSecond: 2 * MiB });
  const { uploadUrl } = await tusUpload(gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  while (!glance.puts.some((p) => p.imageId === image.id && p.bytes > 0)) await new Promise((r) => setTimeout(r, 10));
  return { image, path: new URL(uploadUrl).pathname };
}

test('Glance unreachable mid-push: retrying, then active once it is back', { timeout: 60_000 }, async () => {
  const { image, path } = await pushUnderWay();

  glance.setDown(true);
  const retrying = await waitForState(gw.url, path, 'token-a', ['retrying', 'failed', 'active']);
  assert.equal(retrying.status.state, 'retrying');
  assert.equal(retrying.status.error?.code, 'glance_unreachable');
  assert.ok(retrying.status.nextAttemptAt);
  glance.setDown(false);

  const { status } = await waitForState(gw.url, path, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(glance.puts.filter((p) => p.imageId === image.id).at(-1)!.sha256, file.sha256);
});

test('a Glance that stays down past the retry budget: failed with a clear error; POST /push starts it again', { timeout: 60_000 }, async () => {
  const { image, path } = await pushUnderWay();

  glance.setDown(true);
  const failed = await waitForState(gw.url, path, 'token-a', ['failed', 'active']);
  assert.equal(failed.status.state, 'failed');
  assert.equal(failed.status.error?.code, 'glance_unreachable');
  assert.match(failed.status.error!.message, /gave up after 4 attempts/);

  glance.setDown(false);
  const restart = await fetch(new URL(`${path}/push`, gw.url), { method: 'POST', headers: { 'x-auth-token': 'token-a' } });
  assert.equal(restart.status, 202);
  const { status } = await waitForState(gw.url, path, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(glance.puts.filter((p) => p.imageId === image.id).at(-1)!.sha256, file.sha256);
});

test('while Glance hangs, HEAD and PATCH of an upload answer at once: its owner is known without Glance', { timeout: 30_000 }, async () => {
  const image = glance.createImage('project-a');
  const created = await create(gw.url, { 'x-auth-token': 'token-a', 'upload-length': '20', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(created.status, 201);
  const url = new URL(created.headers.get('location')!, gw.url);
  const held: (() => void)[] = [];
  glance.beforeGet = () => new Promise<void>((resolve) => held.push(resolve));
  try {
    const headers = { ...TUS, 'x-auth-token': 'token-a' };
    const patch = await fetch(url, {
      method: 'PATCH',
      headers: { ...headers, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
      body: Buffer.alloc(10),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(patch.status, 204);
    const head = await fetch(url, { method: 'HEAD', headers, signal: AbortSignal.timeout(5000) });
    assert.equal(head.headers.get('upload-offset'), '10');
  } finally {
    glance.beforeGet = undefined;
    for (const release of held) release();
  }
});
