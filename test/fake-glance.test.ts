// Checks the fake Glance itself, so that the push tests can trust it.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { FakeGlance } from './support/fake-glance.js';

const MiB = 1024 * 1024;
let glance: FakeGlance;

before(async () => {
  glance = await FakeGlance.start();
});
after(() => glance.stop());

const hex = (alg: string, data: Buffer): string => createHash(alg).update(data).digest('hex');

interface PutOpts { token?: string; headers?: Record<string, string>; signal?: AbortSignal }

function put(id: string, body: Buffer | PassThrough, opts: PutOpts = {}) {
  const token = opts.token ?? 'token-a';
  const headers = { 'x-auth-token': token, 'content-type': 'application/octet-stream', ...opts.headers };
  return request(`${glance.url}/v2/images/${id}/file`, { method: 'PUT', headers, body, signal: opts.signal });
}

async function call(method: 'GET' | 'POST', path: string, token: string | null = 'token-a', json?: unknown) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers['x-auth-token'] = token;
  const body = json === undefined ? undefined : JSON.stringify(json);
  const res = await request(`${glance.url}${path}`, { method, headers, body });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function waitFor(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const lastPut = () => glance.puts.at(-1)!;

describe('fake glance', () => {
  test('versions answer without a token', async () => {
    const res = await call('GET', '/versions', null);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { versions: [{ id: 'v2.16', status: 'CURRENT' }] });
  });

  test('POST then PUT 3 MiB makes the image active with the right hashes', async () => {
    const fields = { name: 'n', disk_format: 'qcow2', container_format: 'bare', unknown_key: 1 };
    const created = await call('POST', '/v2/images', 'token-a', fields);
    assert.equal(created.status, 201);
    assert.equal(created.body.owner, 'project-a');
    assert.equal(created.body.status, 'queued');
    const id = created.body.id as string;
    const data = randomBytes(3 * MiB);
    const res = await put(id, data, { headers: { 'x-openstack-image-size': String(data.length) } });
    await res.body.dump();
    assert.equal(res.statusCode, 204);
    const got = await call('GET', `/v2/images/${id}`);
    assert.equal(got.body.status, 'active');
    assert.equal(got.body.size, data.length);
    assert.equal(got.body.checksum, hex('md5', data));
    assert.equal(got.body.os_hash_algo, 'sha512');
    assert.equal(got.body.os_hash_value, hex('sha512', data));
    assert.deepEqual({ ...lastPut(), headers: undefined, token: undefined }, {
      imageId: id, token: undefined, headers: undefined, bytes: data.length, completed: true, status: 204,
      md5: hex('md5', data), sha256: hex('sha256', data), sha512: hex('sha512', data), multihash: hex('sha512', data),
    });
    const again = await put(id, data);
    assert.equal(again.statusCode, 409);
    assert.match(((await again.body.json()) as { message: string }).message, /active/);
  });

  test('POST validates formats and leaves a missing container_format null', async () => {
    assert.equal((await call('POST', '/v2/images', 'token-a', { disk_format: 'zvhd' })).status, 400);
    const created = await call('POST', '/v2/images', 'token-a', { disk_format: 'raw' });
    assert.equal(created.body.container_format, null);
    const res = await put(created.body.id as string, Buffer.alloc(10));
    assert.equal(res.statusCode, 400);
    await res.body.dump();
  });

  test('bad, missing and revoked tokens get 401', async () => {
    const id = glance.createImage('project-a').id;
    assert.equal((await call('GET', `/v2/images/${id}`, 'nope')).status, 401);
    assert.equal((await call('GET', `/v2/images/${id}`, null)).status, 401);
    glance.addToken('token-c', 'project-a');
    assert.equal((await call('GET', `/v2/images/${id}`, 'token-c')).status, 200);
    glance.revokeToken('token-c');
    const res = await call('GET', `/v2/images/${id}`, 'token-c');
    assert.equal(res.status, 401);
    assert.equal(typeof res.body.message, 'string');
  });

  test('another project gets 404 unless the image is public', async () => {
    const id = glance.createImage('project-a').id;
    assert.equal((await call('GET', `/v2/images/${id}`, 'token-b')).status, 404);
    const res = await put(id, Buffer.alloc(10), { token: 'token-b' });
    assert.equal(res.statusCode, 404);
    await res.body.dump();
    glance.setImage(id, { visibility: 'public' });
    assert.equal((await call('GET', `/v2/images/${id}`, 'token-b')).status, 200);
  });

  test('wrong Content-Type gets 415', async () => {
    const id = glance.createImage('project-a').id;
    const res = await put(id, Buffer.alloc(10), { headers: { 'content-type': 'text/plain' } });
    assert.equal(res.statusCode, 415);
    await res.body.dump();
  });

  test('a declared size that does not match gets 400 and the image stays queued', async () => {
    const id = glance.createImage('project-a').id;
    const res = await put(id, Buffer.alloc(10), { headers: { 'x-openstack-image-size': '11' } });
    assert.equal(res.statusCode, 400);
    await res.body.dump();
    assert.equal(glance.image(id)?.status, 'queued');
  });

  test('a client that drops mid-body leaves the image queued', async () => {
    const id = glance.createImage('project-a').id;
    const body = new PassThrough();
    const abort = new AbortController();
    const pending = put(id, body, { signal: abort.signal }).catch((err: unknown) => err);
    body.write(randomBytes(MiB));
    await waitFor(() => lastPut().imageId === id && lastPut().bytes === MiB);
    assert.equal(glance.image(id)?.status, 'saving');
    abort.abort();
    assert.ok((await pending) instanceof Error);
    await waitFor(() => glance.image(id)?.status === 'queued');
    assert.equal(lastPut().completed, false);
  });

  describe('faults', () => {
    test('status answers after reading the body', async () => {
      const id = glance.createImage('project-a').id;
      glance.failNextPuts({ kind: 'status', status: 503, message: 'busy' });
      const res = await put(id, randomBytes(MiB));
      assert.equal(res.statusCode, 503);
      assert.equal(((await res.body.json()) as { message: string }).message, 'busy');
      assert.equal(lastPut().bytes, MiB);
      assert.equal(glance.image(id)?.status, 'queued');
    });

    test('status-early answers without reading the body', async () => {
      const id = glance.createImage('project-a').id;
      glance.failNextPuts({ kind: 'status-early', status: 401 });
      const res = await put(id, randomBytes(3 * MiB));
      assert.equal(res.statusCode, 401);
      await res.body.dump();
      assert.equal(lastPut().bytes, 0);
      assert.equal(lastPut().status, 401);
    });

    test('reset cuts the socket after the given bytes and the image is queued again', async () => {
      const id = glance.createImage('project-a').id;
      const data = randomBytes(3 * MiB);
      glance.failNextPuts({ kind: 'reset', afterBytes: MiB });
      await assert.rejects(put(id, data));
      assert.equal(lastPut().bytes, MiB);
      assert.equal(lastPut().md5, hex('md5', data.subarray(0, MiB)));
      assert.equal(lastPut().completed, false);
      await waitFor(() => glance.image(id)?.status === 'queued');
      const retry = await put(id, data);
      assert.equal(retry.statusCode, 204);
      assert.equal(glance.image(id)?.checksum, hex('md5', data));
    });

    test('wrong-checksum accepts but records other hashes', async () => {
      const id = glance.createImage('project-a').id;
      const data = randomBytes(MiB);
      glance.failNextPuts({ kind: 'wrong-checksum' });
      assert.equal((await put(id, data)).statusCode, 204);
      const img = glance.image(id);
      assert.equal(img?.status, 'active');
      assert.notEqual(img?.checksum, hex('md5', data));
      assert.match(img?.checksum ?? '', /^[0-9a-f]{32}$/);
      assert.notEqual(img?.os_hash_value, hex('sha512', data));
      assert.equal(lastPut().md5, hex('md5', data));
    });

    test('stall waits before reading, then works', async () => {
      const id = glance.createImage('project-a').id;
      glance.failNextPuts({ kind: 'stall', ms: 300 });
      const started = Date.now();
      const res = await put(id, randomBytes(MiB));
      assert.equal(res.statusCode, 204);
      assert.ok(Date.now() - started >= 290);
      assert.equal(glance.image(id)?.status, 'active');
    });
  });

  test('setDown makes requests fail with a connection error until it is back', async () => {
    const id = glance.createImage('project-a').id;
    assert.equal((await call('GET', `/v2/images/${id}`)).status, 200); // leaves a keep-alive socket
    glance.setDown(true);
    await assert.rejects(call('GET', `/v2/images/${id}`), (err: Error & { code?: string }) => {
      assert.match(err.code ?? '', /^(UND_ERR_SOCKET|ECONNRESET|EPIPE)$/);
      return true;
    });
    glance.setDown(false);
    assert.equal((await call('GET', `/v2/images/${id}`)).status, 200);
  });
});
