// The gateway against a real Keystone and Glance (scripts/openstack-stack.sh), with real tokens.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { assertNoToken, glanceHashes, makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { createImage, getImage, issueToken, revokeToken } from './support/openstack.js';
import { realStack } from './support/stacks.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { tusUpload } from './support/tus.js';

const stack = realStack({ LOG_LEVEL: 'trace' });
let dir: string;

before(async () => {
  dir = await tempDir('gw-os-');
});

test('a member uploads 32 MiB into an image of their project: active, with Glance hashes of the file', async () => {
  const file = await makeFile(dir, 'member.raw', 32 * MiB);
  const image = await createImage(stack.env, stack.demo.token, { name: 'member upload' });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: stack.demo.token, metadata: { image_id: image.id }, chunkSize: 8 * MiB });
  const { status } = await waitForState(stack.gw.url, new URL(uploadUrl).pathname, stack.demo.token, ['active', 'failed'], 120_000);
  assert.equal(status.state, 'active', JSON.stringify(status.error));

  const glance = await getImage(stack.env, stack.demo.token, image.id);
  const expected = await glanceHashes(file.path);
  assert.equal(glance.status, 'active');
  assert.equal(glance.size, 32 * MiB);
  assert.equal(glance.checksum, expected.md5);
  assert.equal(glance.os_hash_algo, 'sha512');
  assert.equal(glance.os_hash_value, expected.sha512);
});

test('the gateway creates the image from name/disk_format, in the caller project', async () => {
  const file = await makeFile(dir, 'created.raw', 2 * MiB);
  const result = await tusUpload(stack.gw.url, file.path, {
    token: stack.demo.token,
    metadata: { name: 'made by the gateway', disk_format: 'raw', visibility: 'private' },
  });
  const imageId = result.headers['glance-image-id']!;
  const { status } = await waitForState(stack.gw.url, new URL(result.uploadUrl).pathname, stack.demo.token, ['active', 'failed'], 60_000);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  const glance = await getImage(stack.env, stack.demo.token, imageId);
  assert.equal(glance.owner, stack.demo.projectId);
  assert.equal(glance.name, 'made by the gateway');
  assert.equal(glance.container_format, 'bare');
});

test('creation: a bad token -> 401, another project image -> 404, an active image -> 409', async () => {
  const mine = await createImage(stack.env, stack.demo.token);
  const theirs = await createImage(stack.env, stack.alt.token);
  const bad = await create(stack.gw.url, { 'x-auth-token': 'not-a-token', 'upload-length': '10', 'upload-metadata': meta({ image_id: mine.id }) });
  assert.equal(bad.status, 401);
  const other = await create(stack.gw.url, { 'x-auth-token': stack.demo.token, 'upload-length': '10', 'upload-metadata': meta({ image_id: theirs.id }) });
  assert.equal(other.status, 404);

  const put = await fetch(`${stack.env.GLANCE_URL}/v2/images/${mine.id}/file`, {
    method: 'PUT',
    headers: { 'x-auth-token': stack.demo.token, 'content-type': 'application/octet-stream' },
    body: Buffer.alloc(1024),
  });
  assert.equal(put.status, 204);
  const active = await create(stack.gw.url, { 'x-auth-token': stack.demo.token, 'upload-length': '10', 'upload-metadata': meta({ image_id: mine.id }) });
  assert.equal(active.status, 409);
  assert.equal(active.body?.error?.code, 'image_not_queued');
});

test("another project's user gets 404 on HEAD, PATCH, DELETE, status, events and push of an upload", async () => {
  const image = await createImage(stack.env, stack.demo.token);
  const created = await create(stack.gw.url, { 'x-auth-token': stack.demo.token, 'upload-length': '1024', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(created.status, 201);
  const url = new URL(created.headers.get('location')!, stack.gw.url).toString();
  const as = (token: string) => ({ ...TUS, 'x-auth-token': token });

  const attempts: [string, Promise<Response>][] = [
    ['HEAD', fetch(url, { method: 'HEAD', headers: as(stack.alt.token) })],
    ['PATCH', fetch(url, { method: 'PATCH', headers: { ...as(stack.alt.token), 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }, body: Buffer.alloc(1024) })],
    ['DELETE', fetch(url, { method: 'DELETE', headers: as(stack.alt.token) })],
    ['status', fetch(`${url}/status`, { headers: as(stack.alt.token) })],
    ['events', fetch(`${url}/events`, { headers: as(stack.alt.token) })],
    ['push', fetch(`${url}/push`, { method: 'POST', headers: as(stack.alt.token) })],
  ];
  for (const [what, pending] of attempts) {
    const res = await pending;
    assert.equal(res.status, 404, `${what} answered ${res.status}`);
    await res.arrayBuffer();
  }
  const head = await fetch(url, { method: 'HEAD', headers: as(stack.demo.token) });
  assert.equal(head.status, 200, 'the owner still sees it');
  assert.equal(head.headers.get('upload-offset'), '0', "the other project's PATCH stored nothing");
});

test('with only OS_AUTH_URL the image endpoint comes from the token catalog', async () => {
  const catalog = await startGateway({ OS_AUTH_URL: stack.env.OS_AUTH_URL, OS_REGION_NAME: 'RegionOne' });
  try {
    const file = await makeFile(dir, 'catalog.raw', 2 * MiB);
    const image = await createImage(stack.env, stack.demo.token);
    const { uploadUrl } = await tusUpload(catalog.url, file.path, { token: stack.demo.token, metadata: { image_id: image.id } });
    const { status } = await waitForState(catalog.url, new URL(uploadUrl).pathname, stack.demo.token, ['active', 'failed'], 60_000);
    assert.equal(status.state, 'active', JSON.stringify(status.error));
    assert.equal((await getImage(stack.env, stack.demo.token, image.id)).status, 'active');
  } finally {
    await catalog.close();
  }
});

test('a token revoked between the last PATCH and the push -> awaiting_token; a fresh token -> active', async () => {
  // One push slot, kept busy by a slowed push, so the second upload provably waits in `queued`.
  const proxy = await TcpProxy.start(stack.env.GLANCE_URL);
  const slow = await startGateway({ GLANCE_URL: proxy.url, OS_AUTH_URL: stack.env.OS_AUTH_URL, PUSH_CONCURRENCY: '1' });
  try {
    const busy = await makeFile(dir, 'busy.raw', 24 * MiB);
    const mine = await makeFile(dir, 'revoked.raw', 1 * MiB);
    const session = await issueToken(stack.env, stack.env.OS_USERNAME, stack.env.OS_PASSWORD, stack.env.OS_PROJECT_NAME);

    proxy.setRate(8 * MiB);
    const first = await tusUpload(slow.url, busy.path, { token: stack.demo.token, metadata: { image_id: (await createImage(stack.env, stack.demo.token)).id } });
    await waitForState(slow.url, new URL(first.uploadUrl).pathname, stack.demo.token, 'pushing', 30_000);
    const image = await createImage(stack.env, session.token);
    const second = await tusUpload(slow.url, mine.path, { token: session.token, metadata: { image_id: image.id } });
    const id = second.uploadUrl.split('/').pop()!;
    assert.equal((await slow.gateway.uploads.status(id)).state, 'queued', 'the push has not started yet');
    await revokeToken(stack.env, session.token);
    proxy.setRate(null);

    const deadline = Date.now() + 60_000;
    while ((await slow.gateway.uploads.status(id)).state !== 'awaiting_token') {
      assert.ok(Date.now() < deadline, `state is ${(await slow.gateway.uploads.status(id)).state}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const waiting = await slow.gateway.uploads.status(id);
    assert.equal(waiting.error?.httpStatus, 401);

    const fresh = await issueToken(stack.env, stack.env.OS_USERNAME, stack.env.OS_PASSWORD, stack.env.OS_PROJECT_NAME);
    const path = new URL(second.uploadUrl).pathname;
    const { status } = await waitForState(slow.url, path, fresh.token, ['active', 'failed'], 60_000);
    assert.equal(status.state, 'active', JSON.stringify(status.error));
    assert.equal((await getImage(stack.env, fresh.token, image.id)).checksum, (await glanceHashes(mine.path)).md5);
  } finally {
    await slow.close();
    await proxy.stop();
  }
});

test('no Keystone token used above reached a log line or a file under STORAGE_DIR', async () => {
  assert.ok(stack.gw.logs.lines.length > 10);
  await assertNoToken([stack.demo.token, stack.alt.token], stack.gw.logs.lines, stack.gw.storageDir);
});
