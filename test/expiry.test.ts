// Expiration: idle unfinished uploads and finished ones go; an upload in use or waiting for its push stays.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { PutFault } from './support/fake-glance.js';
import { listFiles, makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const EXPIRY_MS = 1000;
const stack = fakeStack({ UPLOAD_EXPIRY_HOURS: String(EXPIRY_MS / 3600_000) });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stored = async (id: string) => (await listFiles(path.join(stack.gw.storageDir, 'uploads'))).filter((f) => f.startsWith(id));

async function partial(): Promise<string> {
  const res = await fetch(`${stack.gw.url}/files/`, {
    method: 'POST',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-length': '100', 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }), 'content-type': 'application/offset+octet-stream' },
    body: Buffer.alloc(10),
  });
  assert.equal(res.status, 201);
  assert.ok(res.headers.get('upload-expires'), 'the expiration extension announces the deadline');
  return new URL(res.headers.get('location')!, stack.gw.url).toString();
}

test('an idle unfinished upload is removed after the expiry', { timeout: 30_000 }, async () => {
  const url = await partial();
  const id = url.split('/').pop()!;
  await sleep(EXPIRY_MS * 3);
  const head = await fetch(url, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.ok([404, 410].includes(head.status), `HEAD answered ${head.status}`);
  assert.deepEqual(await stored(id), []);
  assert.equal(await stack.gw.gateway.uploads.record(id), undefined);
});

test('an upload still receiving is not expired: the expiry counts from the last write', { timeout: 30_000 }, async () => {
  const url = await partial();
  for (let offset = 10; offset < 16; offset++) {
    await sleep(EXPIRY_MS * 0.5);
    const res = await fetch(url, {
      method: 'PATCH',
      headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
      body: Buffer.alloc(1),
    });
    assert.equal(res.status, 204, `PATCH at ${offset}`);
    assert.ok(res.headers.get('upload-expires'));
  }
});

test('an upload waiting for a push slot stays; one waiting for a token that never came goes, like failed and active ones', { timeout: 60_000 }, async () => {
  const file = await makeFile(await tempDir(), 'disk.raw', 1 * MiB);
  const upload = async (fault?: PutFault) => {
    const image = stack.glance.createImage('project-a');
    if (fault) stack.glance.failNextPuts(fault);
    const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
    return new URL(uploadUrl).pathname;
  };
  const abandoned = await upload({ kind: 'status', status: 401 });
  const failed = await upload({ kind: 'status', status: 403 });
  const active = await upload();
  await waitForState(stack.gw.url, failed, 'token-a', 'failed');
  await waitForState(stack.gw.url, active, 'token-a', 'active');
  const abandonedId = abandoned.split('/').pop()!;
  while ((await stack.gw.gateway.uploads.status(abandonedId)).state !== 'awaiting_token') await sleep(20);
  // Both push slots busy with slow pushes: the next upload waits in `queued` for longer than the expiry.
  const slow = { kind: 'slow', bytesPerSecond: 200 * 1024 } as const;
  await upload(slow);
  await upload(slow);
  const queuedId = (await upload()).split('/').pop()!;

  await sleep(EXPIRY_MS * 3);
  assert.equal((await stack.gw.gateway.uploads.status(queuedId)).state, 'queued', 'the upload waiting for a slot is still there');
  assert.equal((await stored(queuedId)).length, 2, 'with its data and info');
  for (const gone of [abandoned, failed, active]) {
    const id = gone.split('/').pop()!;
    assert.equal(await stack.gw.gateway.uploads.record(id), undefined, `${gone} removed`);
    assert.deepEqual(await stored(id), []);
  }
});

test('an image the gateway created for an upload that expired is deleted', { timeout: 30_000 }, async () => {
  const res = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '100', 'upload-metadata': meta({ name: 'never finished', disk_format: 'raw' }) });
  assert.equal(res.status, 201);
  const imageId = res.headers.get('glance-image-id')!;
  await sleep(EXPIRY_MS * 3);
  assert.equal(stack.glance.image(imageId)?.status, 'deleted');
});
