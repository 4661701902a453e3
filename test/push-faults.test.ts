// Glance's answers to the push, mapped to the states.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { UploadState } from '../src/state/upload-record.js';
import type { PutFault } from './support/fake-glance.js';
import { makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const stack = fakeStack({ PUSH_MAX_ATTEMPTS: '3' });
let file: { path: string; sha256: string };
const states = new Map<string, UploadState[]>();

before(async () => {
  await stack.ready;
  file = await makeFile(await tempDir('gw-data-'), 'disk.raw', 8 * MiB);
  // Every state an upload passes through, in order, from the gateway's own event bus.
  stack.gw.gateway.events.subscribe('*', (event) => {
    if (event.kind !== 'state') return;
    const seen = states.get(event.record.id) ?? [];
    if (seen.at(-1) !== event.record.state) seen.push(event.record.state);
    states.set(event.record.id, seen);
  });
});

/** Upload the file into a fresh image with the given faults queued for its PUTs. */
async function uploadWith(...faults: PutFault[]): Promise<{ uploadUrl: string; imageId: string; id: string }> {
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts(...faults);
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  return { uploadUrl: new URL(uploadUrl).pathname, imageId: image.id, id: uploadUrl.split('/').pop()! };
}

const putsFor = (imageId: string) => stack.glance.puts.filter((p) => p.imageId === imageId);

test('503 then 204: retrying, then active', async () => {
  const { uploadUrl, imageId, id } = await uploadWith({ kind: 'status', status: 503 });
  const { status } = await waitForState(stack.gw.url, uploadUrl, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  await reaches(id, 'active'); // the event follows the durable write, a moment after the state shows
  assert.deepEqual(states.get(id), ['receiving', 'queued', 'pushing', 'retrying', 'queued', 'pushing', 'verifying', 'active']);
  assert.equal(status.attempts, 2);
  assert.deepEqual(putsFor(imageId).map((p) => p.status), [503, 204]);
  assert.equal(putsFor(imageId)[1]!.sha256, file.sha256);
});

test('a connection reset mid-body is retried and ends active with the same bytes', async () => {
  const { uploadUrl, imageId, id } = await uploadWith({ kind: 'reset', afterBytes: 1 * MiB });
  const { status } = await waitForState(stack.gw.url, uploadUrl, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  assert.ok(states.get(id)!.includes('retrying'));
  const puts = putsFor(imageId);
  assert.equal(puts.length, 2);
  assert.equal(puts[0]!.completed, false);
  assert.equal(puts[1]!.sha256, file.sha256);
});

/** Wait for a state on the gateway's event bus (no HTTP request, which would bring a token along). */
function reaches(id: string, state: UploadState, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (states.get(id)?.includes(state)) return resolve();
    const timer = setTimeout(() => reject(new Error(`${id} never reached ${state}: ${states.get(id)?.join(' -> ')}`)), timeoutMs);
    const stop = stack.gw.gateway.events.subscribe(id, (event) => {
      if (event.kind === 'state' && event.record.state === state) {
        clearTimeout(timer);
        stop();
        resolve();
      }
    });
  });
}

test('401: awaiting_token until a request brings a token Glance accepts, then active with that token', async () => {
  stack.glance.addToken('token-c', 'project-a');
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 401 });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-c', metadata: { image_id: image.id } });
  const path = new URL(uploadUrl).pathname;
  const id = path.split('/').pop()!;
  await reaches(id, 'awaiting_token');
  stack.glance.revokeToken('token-c'); // what a real 401 means: this token is done for

  const stale = await fetch(new URL(`${path}/status`, stack.gw.url), { headers: { 'x-auth-token': 'token-c' } });
  assert.equal(stale.status, 401);
  const waiting = await stack.gw.gateway.uploads.status(id);
  assert.equal(waiting.state, 'awaiting_token');
  assert.equal(waiting.error?.httpStatus, 401);

  stack.glance.addToken('token-c-fresh', 'project-a');
  const head = await fetch(new URL(path, stack.gw.url), { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-c-fresh' } });
  assert.equal(head.status, 200);
  const { status } = await waitForState(stack.gw.url, path, 'token-c-fresh', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(putsFor(image.id).at(-1)!.token, 'token-c-fresh', 'the freshest token pushes');
});

for (const code of [403, 404, 413]) {
  test(`${code}: failed, with Glance's status and message`, async () => {
    const { uploadUrl, imageId } = await uploadWith({ kind: 'status', status: code, message: `glance says ${code}` });
    const { status } = await waitForState(stack.gw.url, uploadUrl, 'token-a', ['active', 'failed', 'retrying']);
    assert.equal(status.state, 'failed');
    assert.equal(status.error?.httpStatus, code);
    assert.match(status.error!.message, new RegExp(`glance says ${code}`));
    assert.equal(putsFor(imageId).length, 1, 'not retried');
  });
}

test('204 but a different checksum: failed, never active', async () => {
  const { uploadUrl } = await uploadWith({ kind: 'wrong-checksum' });
  const { status, seen } = await waitForState(stack.gw.url, uploadUrl, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'failed');
  assert.equal(status.error?.code, 'verification_failed');
  assert.ok(!seen.includes('active'));
  assert.equal(status.glance?.status, 'active', 'the status shows what Glance reports');
});

test('409 while the image is saving elsewhere: waits, then pushes once Glance put it back to queued', async () => {
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 409 });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  stack.glance.setImage(image.id, { status: 'saving' });
  const path = new URL(uploadUrl).pathname;
  const retrying = await waitForState(stack.gw.url, path, 'token-a', ['retrying', 'active', 'failed']);
  assert.equal(retrying.status.state, 'retrying');
  stack.glance.setImage(image.id, { status: 'queued' });
  const { status } = await waitForState(stack.gw.url, path, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
});

test('409 because Glance already holds our bytes (a lost 204): active without a second upload', async () => {
  const first = await uploadWith();
  await waitForState(stack.gw.url, first.uploadUrl, 'token-a', 'active');
  // Same bytes into a second image that Glance reports active already with them.
  const twin = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 409 });
  const done = stack.glance.image(first.imageId)!;
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: twin.id } });
  // Only once the PUT got its 409 does Glance show the image active with our bytes.
  while (!putsFor(twin.id).some((p) => p.status === 409)) await new Promise((r) => setTimeout(r, 5));
  stack.glance.setImage(twin.id, { status: 'active', size: done.size, checksum: done.checksum, os_hash_algo: 'sha512', os_hash_value: done.os_hash_value });
  const { status } = await waitForState(stack.gw.url, new URL(uploadUrl).pathname, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  assert.deepEqual(putsFor(twin.id).map((p) => p.status), [409], 'no second upload of the data');
});

test('a Glance that stays down ends failed after the retry budget; POST /push starts it again', async () => {
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  const path = new URL(uploadUrl).pathname;
  const failed = await waitForState(stack.gw.url, path, 'token-a', ['failed', 'active']);
  assert.equal(failed.status.state, 'failed');
  assert.equal(failed.status.attempts, 3);
  assert.match(failed.status.error!.message, /gave up after 3 attempts/);

  const restart = await fetch(new URL(`${path}/push`, stack.gw.url), { method: 'POST', headers: { 'x-auth-token': 'token-a' } });
  assert.equal(restart.status, 202);
  const { status } = await waitForState(stack.gw.url, path, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(status.attempts, 1, 'a fresh retry budget');

  const again = await fetch(new URL(`${path}/push`, stack.gw.url), { method: 'POST', headers: { 'x-auth-token': 'token-a' } });
  assert.equal(again.status, 409, 'an active upload has nothing to push');
});

test("a watcher's token (status, events) does not replace the uploader's push token", async () => {
  stack.glance.addToken('token-a-watcher', 'project-a');
  const image = stack.glance.createImage('project-a', { visibility: 'public' });
  stack.glance.failNextPuts({ kind: 'status', status: 503, bytesPerSecond: 8 * MiB });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  const path = new URL(uploadUrl).pathname;
  const outsider = await fetch(new URL(`${path}/status`, stack.gw.url), { headers: { 'x-auth-token': 'token-b' } });
  assert.equal(outsider.status, 404, 'another project does not watch, even a public image');
  const { status } = await waitForState(stack.gw.url, path, 'token-a-watcher', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.deepEqual(putsFor(image.id).map((p) => p.token), ['token-a', 'token-a']);
});

test('401 while a fresher token already arrived: the push goes again with it instead of waiting', async () => {
  stack.glance.addToken('token-d', 'project-a');
  stack.glance.addToken('token-d2', 'project-a');
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 401, bytesPerSecond: 4 * MiB });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-d', metadata: { image_id: image.id } });
  const path = new URL(uploadUrl).pathname;
  while (!putsFor(image.id).some((p) => p.bytes > 0)) await new Promise((r) => setTimeout(r, 5));
  const head = await fetch(new URL(path, stack.gw.url), { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-d2' } });
  assert.equal(head.status, 200);
  const id = path.split('/').pop()!;
  await reaches(id, 'active');
  assert.ok(!states.get(id)!.includes('awaiting_token'), states.get(id)!.join(' -> '));
  assert.deepEqual(putsFor(image.id).map((p) => [p.token, p.status]), [['token-d', 401], ['token-d2', 204]]);
});

test('POST /push on an upload awaiting a token: 202, and the push runs with that token', async () => {
  stack.glance.addToken('token-e', 'project-a');
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 401 });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-e', metadata: { image_id: image.id } });
  const path = new URL(uploadUrl).pathname;
  await reaches(path.split('/').pop()!, 'awaiting_token');
  stack.glance.revokeToken('token-e');
  stack.glance.addToken('token-e2', 'project-a');
  const push = await fetch(new URL(`${path}/push`, stack.gw.url), { method: 'POST', headers: { 'x-auth-token': 'token-e2' } });
  assert.equal(push.status, 202);
  const { status } = await waitForState(stack.gw.url, path, 'token-e2', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(putsFor(image.id).at(-1)!.token, 'token-e2');
});

test('a failed upload still counts as the image upload: a second one gets 409 until it is removed', async () => {
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 403 });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  await waitForState(stack.gw.url, new URL(uploadUrl).pathname, 'token-a', 'failed');
  const second = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(second.status, 409);
  assert.equal(second.body?.error?.code, 'upload_exists');
  const del = await fetch(uploadUrl, { method: 'DELETE', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.equal(del.status, 204);
  const third = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(third.status, 201);
});
