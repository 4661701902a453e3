// The push streams to Glance while the upload arrives, and falls back when the client goes quiet.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState } from './support/gateway.js';
import { spawnGateway } from './support/gateway-process.js';
import { create, meta, TUS } from './support/http.js';
import { patchWith, trickle } from './support/slow-body.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const stack = fakeStack({ PUSH_STREAM_STALL_MS: '1000' });
let dir: string;
let file: { path: string; sha256: string };
const SIZE = 16 * MiB;

before(async () => {
  dir = await tempDir('gw-stream-');
  file = await makeFile(dir, 'disk.raw', SIZE);
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const putsFor = (imageId: string) => stack.glance.puts.filter((p) => p.imageId === imageId);

async function newUpload(base: string, diskFormat = 'raw'): Promise<{ url: string; imageId: string }> {
  const image = stack.glance.createImage('project-a', { disk_format: diskFormat });
  const created = await create(base, { 'x-auth-token': 'token-a', 'upload-length': String(SIZE), 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(created.status, 201);
  return { url: new URL(created.headers.get('location')!, base).toString(), imageId: image.id };
}

test('clean run: Glance receives the bytes while they arrive; offset and pushed both grow; active right after the last PATCH', { timeout: 60_000 }, async () => {
  const { url, imageId } = await newUpload(stack.gw.url);
  const slow = trickle(file.path, 0, SIZE, 256 * 1024, 40); // ~6 MiB/s
  const patching = patchWith(url, 'token-a', 0, SIZE, slow.body);

  const seen: { offset: number; pushed: number; state: string }[] = [];
  while (seen.length < 200) {
    const status = await (await fetch(`${url}/status`, { headers: { 'x-auth-token': 'token-a' } })).json();
    seen.push(status as { offset: number; pushed: number; state: string });
    if ((status as { offset: number }).offset >= SIZE) break;
    await sleep(100);
  }
  const during = seen.filter((s) => s.state === 'receiving' && s.pushed > 0);
  assert.ok(during.length >= 3, `pushed grew while receiving: ${JSON.stringify(seen.slice(-5))}`);
  assert.ok(during.at(-1)!.pushed > during[0]!.pushed && during.at(-1)!.offset > during[0]!.offset, 'both grow');
  assert.ok(during.every((s) => s.pushed <= s.offset), 'never ahead of the bytes received');

  const answer = await patching;
  assert.equal(answer.status, 204);
  assert.equal(answer.headers.get('glance-upload-state'), 'pushing', 'the push is already under way');
  const { status } = await waitForState(stack.gw.url, new URL(url).pathname, 'token-a', ['active', 'failed'], 10_000);
  assert.equal(status.state, 'active');
  const puts = putsFor(imageId);
  assert.equal(puts.length, 1, 'one PUT, started while the upload arrived');
  assert.equal(puts[0]!.sha256, file.sha256);
});

test('a client that stalls past the limit: the streaming PUT is aborted, the push runs once the upload is complete', { timeout: 60_000 }, async () => {
  const { url, imageId } = await newUpload(stack.gw.url);
  const half = SIZE / 2;
  const first = await patchWith(url, 'token-a', 0, half, trickle(file.path, 0, half, 512 * 1024, 30).body);
  assert.equal(first.status, 204);
  while (!putsFor(imageId).some((p) => p.bytes > 0)) await sleep(10);
  await sleep(2500); // longer than PUSH_STREAM_STALL_MS
  assert.equal(stack.glance.image(imageId)!.status, 'queued', 'Glance put the image back to queued');
  assert.equal(putsFor(imageId)[0]!.completed, false);

  const rest = await patchWith(url, 'token-a', half, SIZE - half, trickle(file.path, half, SIZE, MiB, 0).body);
  assert.equal(rest.status, 204);
  const { status } = await waitForState(stack.gw.url, new URL(url).pathname, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(putsFor(imageId).at(-1)!.sha256, file.sha256, 'the fallback push sent every byte');
});

test('a client that disconnects for good: the PUT is aborted, the upload stays resumable', { timeout: 60_000 }, async () => {
  const { url, imageId } = await newUpload(stack.gw.url);
  const slow = trickle(file.path, 0, SIZE, 256 * 1024, 20);
  const controller = new AbortController();
  const patching = fetch(url, {
    method: 'PATCH',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(SIZE) },
    body: slow.body,
    duplex: 'half',
    signal: controller.signal,
  } as RequestInit).catch(() => 'cut');
  while (!putsFor(imageId).some((p) => p.bytes > 0)) await sleep(10);
  controller.abort();
  assert.equal(await patching, 'cut');
  await sleep(2500);
  assert.equal(stack.glance.image(imageId)!.status, 'queued', 'Glance is not left waiting for the rest');
  const status = await stack.gw.gateway.uploads.status(url.split('/').pop()!);
  assert.equal(status.state, 'receiving');
  assert.ok(status.offset > 0 && status.offset < SIZE);
});

test('the end-of-file check still refuses a streamed upload, and Glance never completes it', { timeout: 60_000 }, async () => {
  const { url, imageId } = await newUpload(stack.gw.url, 'vhd'); // random bytes: no VHD footer at the end
  const res = await patchWith(url, 'token-a', 0, SIZE, trickle(file.path, 0, SIZE, 256 * 1024, 20).body);
  assert.equal(res.status, 415);
  assert.ok(putsFor(imageId).some((p) => p.bytes > 0), 'the push had been streaming');
  await sleep(200);
  assert.notEqual(stack.glance.image(imageId)!.status, 'active', 'the held-back last byte kept Glance from finishing');
  assert.ok(putsFor(imageId).every((p) => p.bytes < SIZE));
});

test('a streaming push that learns the image was taken only after the upload completed settles it (never stays pushing)', { timeout: 60_000 }, async () => {
  const { url, imageId } = await newUpload(stack.gw.url);
  const head = await fetch(url, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } }); // the gateway has now seen this token see the image
  assert.equal(head.status, 200);
  // The streaming push's look at the image is answered only after the last PATCH: by then the
  // upload's completion has been handed to that push, and the image became active elsewhere.
  let gets = 0;
  let answer!: () => void;
  const held = new Promise<void>((resolve) => (answer = resolve));
  stack.glance.beforeGet = async (id) => {
    if (id === imageId && ++gets === 1) await held;
  };
  try {
    const res = await patchWith(url, 'token-a', 0, SIZE, trickle(file.path, 0, SIZE, MiB, 150).body); // ~2.4 s
    assert.equal(res.status, 204);
    assert.ok(gets >= 1, 'the streaming push asked Glance for the image while the upload arrived');
    assert.equal(putsFor(imageId).length, 0);
    stack.glance.setImage(imageId, { status: 'active', size: 1 }); // someone else's upload won
    answer();
    const { status, seen } = await waitForState(stack.gw.url, new URL(url).pathname, 'token-a', ['active', 'failed'], 10_000);
    assert.equal(status.state, 'failed', `states: ${seen.join(' -> ')}`);
    assert.equal(status.error?.code, 'image_active_elsewhere');
    assert.equal(putsFor(imageId).length, 0, 'nothing was sent over the other upload');
  } finally {
    stack.glance.beforeGet = undefined;
    answer();
  }
});

test('a streaming push that learns the image was taken before its last byte was released settles it (never stays pushing)', { timeout: 60_000 }, async () => {
  const { url, imageId } = await newUpload(stack.gw.url);
  assert.equal((await fetch(url, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } })).status, 200);
  // The stream's look at the image and the look before its last byte are both held back; the
  // stream's is answered first, so the stream ends before the last byte could be released.
  let gets = 0;
  const release: (() => void)[] = [];
  const held = [0, 1].map(() => new Promise<void>((resolve) => release.push(resolve)));
  stack.glance.beforeGet = async (id) => {
    const n = id === imageId ? ++gets : 0;
    if (n === 1 || n === 2) await held[n - 1];
  };
  try {
    const res = await patchWith(url, 'token-a', 0, SIZE, trickle(file.path, 0, SIZE, MiB, 150).body);
    assert.equal(res.status, 204);
    while (gets < 2) await sleep(10);
    stack.glance.setImage(imageId, { status: 'active', size: 1 }); // someone else's upload won
    release[0]!();
    const { status, seen } = await waitForState(stack.gw.url, new URL(url).pathname, 'token-a', ['active', 'failed'], 10_000);
    release[1]!();
    assert.equal(status.state, 'failed', `states: ${seen.join(' -> ')}`);
    assert.equal(status.error?.code, 'image_active_elsewhere');
    assert.equal(putsFor(imageId).length, 0, 'nothing was sent over the other upload');
  } finally {
    stack.glance.beforeGet = undefined;
    for (const r of release) r();
  }
});

test('a gateway restarted mid-stream: Glance goes back to queued; the client resumes and the image ends active', { timeout: 120_000 }, async () => {
  const storage = path.join(dir, 'restart');
  const env = { GLANCE_URL: stack.glance.url, STORAGE_DIR: storage, PUSH_STREAM_STALL_MS: '1000' };
  let gateway = await spawnGateway(env);
  const { url, imageId } = await newUpload(gateway.url);
  const id = url.split('/').pop()!;
  void patchWith(url, 'token-a', 0, SIZE, trickle(file.path, 0, SIZE, 256 * 1024, 20).body).catch(() => undefined);
  while (!putsFor(imageId).some((p) => p.bytes > 0)) await sleep(10);
  await gateway.stop('SIGKILL');
  const deadline = Date.now() + 10_000;
  while (stack.glance.image(imageId)!.status !== 'queued') {
    assert.ok(Date.now() < deadline, 'Glance notices the cut PUT');
    await sleep(20);
  }

  gateway = await spawnGateway(env);
  try {
    await tusUpload(gateway.url, file.path, { token: 'token-a', metadata: {}, uploadUrl: `${gateway.url}/files/${id}` });
    const { status } = await waitForState(gateway.url, `/files/${id}`, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
    assert.equal(putsFor(imageId).at(-1)!.sha256, file.sha256);
  } finally {
    await gateway.stop();
  }
});

test('a client that keeps trickling a few bytes, far below PUSH_STREAM_MIN_RATE, loses its streaming push within the window; the next upload gets the slot; the trickler is pushed once complete', { timeout: 60_000 }, async () => {
  const one = await startGateway({ GLANCE_URL: stack.glance.url, PUSH_STREAM_STALL_MS: '1000', PUSH_CONCURRENCY: '1' }); // default minimum: 1 MiB/s
  try {
    const a = await newUpload(one.url);
    const aId = a.url.split('/').pop()!;
    const start = 256 * 1024;
    assert.equal((await patchWith(a.url, 'token-a', 0, start, trickle(file.path, 0, start, start, 0).body)).status, 204);

    // Then 64 bytes every 200 ms for 8 s: the file grows all the time, at 320 bytes/s. The
    // streaming push starts with this PATCH's first progress report.
    const slowEnd = start + 40 * 64;
    const trickling = patchWith(a.url, 'token-a', start, slowEnd - start, trickle(file.path, start, slowEnd, 64, 200).body);
    while (!putsFor(a.imageId).some((p) => p.bytes > 0)) await sleep(10);
    const streamStarted = Date.now();
    const givenUp = () => one.logs.lines.some((l) => l.includes(aId) && l.includes('streaming push given up'));
    while (!givenUp() && Date.now() - streamStarted < 5_000) await sleep(20);
    assert.ok(givenUp(), 'the streaming push was given up');
    assert.ok(Date.now() - streamStarted < 2_500, `given up within about the 1 s window, after ${Date.now() - streamStarted} ms`);
    const line = one.logs.lines.find((l) => l.includes(aId) && l.includes('streaming push given up'))!;
    assert.match(line, /bytes\/s/, 'for its rate: the file never stopped growing');

    // The single slot is free again while the trickle goes on.
    const b = await newUpload(one.url);
    assert.equal((await patchWith(b.url, 'token-a', 0, SIZE, trickle(file.path, 0, SIZE, MiB, 0).body)).status, 204);
    const { status: bStatus } = await waitForState(one.url, new URL(b.url).pathname, 'token-a', ['active', 'failed'], 10_000);
    assert.equal(bStatus.state, 'active');
    assert.equal((await one.gateway.uploads.status(aId)).state, 'receiving', 'the trickle was still going on');

    assert.equal((await trickling).status, 204);
    const rest = await patchWith(a.url, 'token-a', slowEnd, SIZE - slowEnd, trickle(file.path, slowEnd, SIZE, MiB, 0).body);
    assert.equal(rest.status, 204);
    const { status } = await waitForState(one.url, new URL(a.url).pathname, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
    assert.equal(putsFor(a.imageId).at(-1)!.sha256, file.sha256, 'the push after completion sent every byte');
  } finally {
    await one.close();
  }
});

test('an upload terminated while its gateway-made image receives a streaming push: the image is deleted too', { timeout: 60_000 }, async () => {
  const res = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(SIZE), 'upload-metadata': meta({ name: 'streamed', disk_format: 'raw' }) });
  assert.equal(res.status, 201);
  const url = new URL(res.headers.get('location')!, stack.gw.url).toString();
  const imageId = res.headers.get('glance-image-id')!;
  const sending = patchWith(url, 'token-a', 0, SIZE, trickle(file.path, 0, SIZE, 256 * 1024, 50).body).catch(() => undefined);
  while (!putsFor(imageId).some((p) => p.bytes > 0)) await sleep(10);
  assert.equal(stack.glance.image(imageId)?.status, 'saving');
  stack.glance.requeueDelayMs = 3000; // as a real Glance, which notices the cut PUT only later
  try {
    const del = await fetch(url, { method: 'DELETE', headers: { ...TUS, 'x-auth-token': 'token-a' } });
    assert.equal(del.status, 204);
    await sending;
    for (const deadline = Date.now() + 2500; stack.glance.image(imageId)?.status !== 'deleted'; await sleep(50)) {
      assert.ok(Date.now() < deadline, `the image is ${stack.glance.image(imageId)?.status}`);
    }
  } finally {
    stack.glance.requeueDelayMs = 0;
  }
});
