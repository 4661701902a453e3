// Glance going away mid-push, briefly or for good.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const stack = fakeStack({ PUSH_MAX_ATTEMPTS: '4', PUSH_RETRY_BASE_MS: '200', PUSH_RETRY_MAX_MS: '400' });
let file: { path: string; sha256: string };

before(async () => {
  file = await makeFile(await tempDir('gw-glance-'), 'disk.raw', 8 * MiB);
});

/** Upload, then return once the (slowed) push has started sending. */
async function pushUnderWay(): Promise<{ image: { id: string }; path: string }> {
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'slow', bytesPerSecond: 2 * MiB });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  while (!stack.glance.puts.some((p) => p.imageId === image.id && p.bytes > 0)) await new Promise((r) => setTimeout(r, 10));
  return { image, path: new URL(uploadUrl).pathname };
}

test('Glance unreachable mid-push: retrying, then active once it is back', { timeout: 60_000 }, async () => {
  const { image, path } = await pushUnderWay();

  stack.glance.setDown(true);
  const retrying = await waitForState(stack.gw.url, path, 'token-a', ['retrying', 'failed', 'active']);
  assert.equal(retrying.status.state, 'retrying');
  assert.equal(retrying.status.error?.code, 'glance_unreachable');
  assert.ok(retrying.status.nextAttemptAt);
  stack.glance.setDown(false);

  const { status } = await waitForState(stack.gw.url, path, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(stack.glance.puts.filter((p) => p.imageId === image.id).at(-1)!.sha256, file.sha256);
});

test('a Glance that stays down past the retry budget: failed with a clear error; POST /push starts it again', { timeout: 60_000 }, async () => {
  const { image, path } = await pushUnderWay();

  stack.glance.setDown(true);
  const failed = await waitForState(stack.gw.url, path, 'token-a', ['failed', 'active']);
  assert.equal(failed.status.state, 'failed');
  assert.equal(failed.status.error?.code, 'glance_unreachable');
  assert.match(failed.status.error!.message, /gave up after 4 attempts/);

  stack.glance.setDown(false);
  const restart = await fetch(new URL(`${path}/push`, stack.gw.url), { method: 'POST', headers: { 'x-auth-token': 'token-a' } });
  assert.equal(restart.status, 202);
  const { status } = await waitForState(stack.gw.url, path, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(stack.glance.puts.filter((p) => p.imageId === image.id).at(-1)!.sha256, file.sha256);
});

test('while Glance hangs, HEAD and PATCH of an upload answer at once: its owner is known without Glance', { timeout: 30_000 }, async () => {
  const image = stack.glance.createImage('project-a');
  const created = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '20', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(created.status, 201);
  const url = new URL(created.headers.get('location')!, stack.gw.url);
  const held: (() => void)[] = [];
  stack.glance.beforeGet = () => new Promise<void>((resolve) => held.push(resolve));
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
    stack.glance.beforeGet = undefined;
    for (const release of held) release();
  }
});
