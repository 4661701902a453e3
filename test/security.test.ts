// Tokens never reach a log or the disk, ids are unguessable, CORS only for listed origins.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { assertNoToken, makeFile, MiB, walk } from './support/files.js';
import { startGateway, tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const ORIGIN = 'https://console.example';
const stack = fakeStack({ LOG_LEVEL: 'trace', ALLOWED_ORIGINS: `${ORIGIN},https://other.example`, PUSH_MAX_ATTEMPTS: '2' });

test('after a full run (uploads, refusals, failures, a token refused), no token is in any log line or stored file', { timeout: 120_000 }, async () => {
  const tokens = [0, 1, 2].map(() => `secret-${randomBytes(24).toString('hex')}`);
  for (const t of tokens) stack.glance.addToken(t, 'project-a');
  const dir = await tempDir('gw-sec-');
  const file = await makeFile(dir, 'disk.raw', 2 * MiB);

  // A clean push, a push refused with 401 then resumed with another token, a failed push, refusals at creation.
  const ok = await tusUpload(stack.gw.url, file.path, { token: tokens[0]!, metadata: { name: 'ok', disk_format: 'raw' } });
  await waitForState(stack.gw.url, new URL(ok.uploadUrl).pathname, tokens[0]!, 'active');
  stack.glance.failNextPuts({ kind: 'status', status: 401 });
  const refused = await tusUpload(stack.gw.url, file.path, { token: tokens[1]!, metadata: { name: 'refused', disk_format: 'raw' } });
  const refusedPath = new URL(refused.uploadUrl).pathname;
  const refusedId = refusedPath.split('/').pop()!;
  while ((await stack.gw.gateway.uploads.status(refusedId)).state !== 'awaiting_token') await new Promise((r) => setTimeout(r, 20));
  await waitForState(stack.gw.url, refusedPath, tokens[2]!, 'active');
  stack.glance.failNextPuts({ kind: 'status', status: 403 });
  const failed = await tusUpload(stack.gw.url, file.path, { token: tokens[2]!, metadata: { name: 'failed', disk_format: 'raw' } });
  await waitForState(stack.gw.url, new URL(failed.uploadUrl).pathname, tokens[2]!, 'failed');
  await create(stack.gw.url, { 'x-auth-token': tokens[0]!, 'upload-length': '10', 'upload-metadata': meta({ name: 'x', disk_format: 'floppy' }) });
  await create(stack.gw.url, { 'x-auth-token': `${tokens[0]}x`, 'upload-length': '10', 'upload-metadata': meta({ name: 'x', disk_format: 'raw' }) });

  assert.ok(stack.gw.logs.lines.length > 20, 'the run was logged');
  let files = 0;
  for await (const _ of walk(stack.gw.storageDir)) files++;
  assert.ok(files >= 6, 'data, info and state files are there to check');
  await assertNoToken(tokens, stack.gw.logs.lines, stack.gw.storageDir);
});

test('upload ids carry 128 random bits', async () => {
  const ids = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const res = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }) });
    assert.equal(res.status, 201);
    ids.add(res.headers.get('location')!.split('/').pop()!);
  }
  assert.equal(ids.size, 50);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
  // 50 ids of 128 random bits: every hex digit appears in every position class, no shared prefixes.
  const prefixes = new Set([...ids].map((id) => id.slice(0, 8)));
  assert.equal(prefixes.size, 50);
});

test('CORS: a listed origin may send X-Auth-Token and read the gateway headers', async () => {
  const preflight = await fetch(`${stack.gw.url}/files/`, {
    method: 'OPTIONS',
    headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-auth-token,upload-length' },
  });
  assert.equal(preflight.headers.get('access-control-allow-origin'), ORIGIN);
  assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /X-Auth-Token/i);

  const created = await create(stack.gw.url, { origin: ORIGIN, 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }) });
  assert.equal(created.status, 201);
  assert.equal(created.headers.get('access-control-allow-origin'), ORIGIN);
  const exposed = (created.headers.get('access-control-expose-headers') ?? '').toLowerCase();
  for (const h of ['glance-image-id', 'glance-upload-state', 'upload-offset', 'location']) assert.ok(exposed.includes(h), `${h} is exposed`);

  const statusPreflight = await fetch(new URL(`${created.headers.get("location")}/status`, stack.gw.url), {
    method: 'OPTIONS',
    headers: { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-auth-token' },
  });
  assert.equal(statusPreflight.status, 204);
  assert.equal(statusPreflight.headers.get('access-control-allow-origin'), ORIGIN);
  assert.match(statusPreflight.headers.get('access-control-allow-headers') ?? '', /X-Auth-Token/i);
  const status = await fetch(new URL(`${created.headers.get("location")}/status`, stack.gw.url), { headers: { origin: ORIGIN, 'x-auth-token': 'token-a' } });
  assert.equal(status.headers.get('access-control-allow-origin'), ORIGIN);
});

test('CORS: any other origin gets no CORS header at all', async () => {
  const evil = 'https://evil.example';
  const preflight = await fetch(`${stack.gw.url}/files/`, { method: 'OPTIONS', headers: { origin: evil, 'access-control-request-method': 'POST' } });
  assert.equal(preflight.headers.get('access-control-allow-origin'), null);
  const created = await create(stack.gw.url, { origin: evil, 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }) });
  assert.equal(created.headers.get('access-control-allow-origin'), null);
  const head = await fetch(new URL(created.headers.get("location")!, stack.gw.url), { method: 'HEAD', headers: { ...TUS, origin: evil, 'x-auth-token': 'token-a' } });
  assert.equal(head.headers.get('access-control-allow-origin'), null);
  const health = await fetch(`${stack.gw.url}/healthz`, { headers: { origin: evil } });
  assert.equal(health.headers.get('access-control-allow-origin'), null);
});

test('a token that Glance echoes in its error messages reaches no log line, no stored file and no status answer', { timeout: 60_000 }, async () => {
  const token = `gAAAAA${randomBytes(150).toString('base64url')}`; // shaped like a Keystone Fernet token
  stack.glance.addToken(token, 'project-a');
  const file = await makeFile(await tempDir('gw-sec-echo-'), 'disk.raw', 1 * MiB);
  // A 5xx (retried, so logged and stored as the last error) and then a 4xx (final), each ending with the token.
  stack.glance.failNextPuts(
    { kind: 'status', status: 503, message: 'proxy: upstream refused X-Auth-Token', echoToken: true },
    { kind: 'status', status: 400, message: 'Image data refused for token', echoToken: true },
  );
  const upload = await tusUpload(stack.gw.url, file.path, { token, metadata: { name: 'echo', disk_format: 'raw' } });
  const path = new URL(upload.uploadUrl).pathname;
  const { status, seen } = await waitForState(stack.gw.url, path, token, 'failed');
  assert.ok(seen.includes('retrying') || stack.gw.logs.lines.some((l) => l.includes('push will be retried')), 'the 5xx was retried');
  assert.equal(status.error?.httpStatus, 400);

  const answer = await (await fetch(new URL(`${path}/status`, stack.gw.url), { headers: { 'x-auth-token': token } })).text();
  const pieces = [token, token.slice(10, 50)]; // not even a part of it
  for (const piece of pieces) assert.ok(!answer.includes(piece), 'the status answer holds no token');
  await assertNoToken(pieces, stack.gw.logs.lines, stack.gw.storageDir);
  assert.equal(status.error?.message, 'Image data refused for token [redacted]', 'the message stays readable');
});

test('an upload recorded before owners were kept learns its owner from Glance once; another project still gets 404', { timeout: 60_000 }, async () => {
  const storage = await tempDir('gw-legacy-');
  const first = await startGateway({ GLANCE_URL: stack.glance.url }, storage);
  const image = stack.glance.createImage('project-a');
  const res = await create(first.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(res.status, 201);
  const id = res.headers.get('location')!.split('/').pop()!;
  await first.close();
  const file = path.join(storage, 'state', `${id}.json`);
  const { projectId: _owner, createdImage: _made, ...legacy } = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
  await fsp.writeFile(file, JSON.stringify(legacy));

  const again = await startGateway({ GLANCE_URL: stack.glance.url }, storage);
  try {
    const head = (token: string) => fetch(`${again.url}/files/${id}`, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': token } });
    assert.equal((await head('token-b')).status, 404);
    assert.equal((await head('token-a')).status, 200);
    assert.equal((JSON.parse(await fsp.readFile(file, 'utf8')) as { projectId?: string }).projectId, 'project-a');
    assert.equal((await head('token-b')).status, 404);
  } finally {
    await again.close();
  }
});

test('another user of the owner project may watch an upload but not write, terminate or push it', { timeout: 30_000 }, async () => {
  stack.glance.addToken('token-a-colleague', 'project-a', 'colleague');
  const image = stack.glance.createImage('project-a');
  const res = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(res.status, 201);
  const url = new URL(res.headers.get('location')!, stack.gw.url);
  const as = { ...TUS, 'x-auth-token': 'token-a-colleague' };
  const attempts: [string, Promise<Response>][] = [
    ['HEAD', fetch(url, { method: 'HEAD', headers: as })],
    ['PATCH', fetch(url, { method: 'PATCH', headers: { ...as, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }, body: Buffer.alloc(10) })],
    ['DELETE', fetch(url, { method: 'DELETE', headers: as })],
    ['push', fetch(`${url}/push`, { method: 'POST', headers: as })],
  ];
  for (const [what, pending] of attempts) assert.equal((await pending).status, 404, what);
  assert.equal((await fetch(`${url}/status`, { headers: as })).status, 200, 'a colleague may watch');
  const head = await fetch(url, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.equal(head.headers.get('upload-offset'), '0', "the colleague's PATCH stored nothing");
});
