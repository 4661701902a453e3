// An attacker with a valid token of another project, against the real Keystone and Glance: every verb,
// endpoint and URL shape; images Glance shows them (community, shared); what Glance lets the owner change.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { create, meta, raw, TUS } from './support/http.js';
import { createImage, getImage, imageAnswer, patchImage, shareImage, type Scoped } from './support/openstack.js';
import { realStack } from './support/stacks.js';

const stack = realStack({ PUSH_STREAMING: '0' });
let dir: string;

before(async () => {
  dir = await tempDir('gw-xproject-');
});

/** A fresh upload of `who`'s project into a new image, nothing stored yet. */
async function uploadOf(who: Scoped, length: number, image: Record<string, unknown> = {}): Promise<{ id: string; imageId: string }> {
  const { id: imageId } = await createImage(stack.env, who.token, image);
  const res = await create(stack.gw.url, { 'x-auth-token': who.token, 'upload-length': String(length), 'upload-metadata': meta({ image_id: imageId }) });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { id: res.headers.get('location')!.split('/').pop()!, imageId };
}

async function offsetAs(who: Scoped, id: string): Promise<number | undefined> {
  const res = await raw(stack.gw.url, 'HEAD', `/files/${id}`, { ...TUS, 'x-auth-token': who.token });
  return res.status === 200 ? Number(res.headers['upload-offset']) : undefined;
}

const VERBS = ['HEAD', 'PATCH', 'DELETE', 'POST', 'GET', 'OPTIONS'] as const;

test('a token of another project cannot reach an upload through any verb and any spelling of its URL', { timeout: 120_000 }, async () => {
  const victim = await uploadOf(stack.demo, 1024);
  const own = await uploadOf(stack.alt, 2048); // the attacker's own upload, which the access check lets through
  const V = victim.id;
  const A = own.id;
  const encoded = `%${V.charCodeAt(0).toString(16)}${V.slice(1)}`;
  const shapes = [
    `/files/${V}`,
    `/files/${A}?/${V}`,
    `/files/${A}?x=/${V}`,
    `/files/${A}/?/${V}`,
    `/files?/${V}`,
    `/files/?/${V}`,
    `/files/${A}/../${V}`,
    `/files/${A}%2F..%2F${V}`,
    `/files/${A}%2f${V}`,
    `/files//${V}`,
    `/files/${V}/`,
    `/FILES/${V}`,
    `/files/${encoded}`,
    `/files/${A};/${V}`,
    `/files/${A}#/${V}`,
    `/files/${V}/status`,
    `/files/${V}/events`,
    `/files/${V}/push`,
    `/files/${A}/x/../../${V}/status`,
  ];
  const patch = { 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' };
  for (const target of shapes) {
    for (const method of VERBS) {
      const headers = { ...TUS, 'x-auth-token': stack.alt.token, ...(method === 'PATCH' ? patch : {}) };
      const res = await raw(stack.gw.url, method, target, headers, method === 'PATCH' ? Buffer.alloc(1024, 0x41) : undefined);
      const what = `${method} ${target} answered ${res.status}`;
      if (method === 'OPTIONS') assert.ok(res.status < 300 || res.status === 404, what);
      else assert.ok(res.status >= 400, what);
      assert.notEqual(res.headers['upload-length'], '1024', `${what}: the victim's length leaked`);
      assert.ok(!res.body.includes(victim.imageId), `${what}: the victim's image leaked`);
    }
  }
  assert.equal(await offsetAs(stack.demo, V), 0, "the victim's upload is untouched and still there");
  assert.equal(await offsetAs(stack.alt, A), 0, "no byte went into the attacker's own upload either");
  assert.equal((await getImage(stack.env, stack.demo.token, victim.imageId)).status, 'queued');
});

test('images Glance shows to another project (community, shared with it) are still only their owner\'s to upload', { timeout: 120_000 }, async () => {
  const community = await uploadOf(stack.demo, 1024, { visibility: 'community' });
  const shared = await uploadOf(stack.demo, 1024, { visibility: 'shared' });
  await shareImage(stack.env, stack.demo.token, shared.imageId, stack.alt.projectId);
  // The premise: Glance lets the other project see both images.
  assert.equal(await imageAnswer(stack.env, stack.alt.token, community.imageId), 200);
  assert.equal(await imageAnswer(stack.env, stack.alt.token, shared.imageId), 200);

  for (const { id, imageId } of [community, shared]) {
    const as = { ...TUS, 'x-auth-token': stack.alt.token };
    const attempts: [string, string, string, Buffer?][] = [
      ['HEAD', `/files/${id}`, 'HEAD'],
      ['PATCH', `/files/${id}`, 'PATCH', Buffer.alloc(1024)],
      ['DELETE', `/files/${id}`, 'DELETE'],
      ['status', `/files/${id}/status`, 'GET'],
      ['events', `/files/${id}/events`, 'GET'],
      ['push', `/files/${id}/push`, 'POST'],
    ];
    for (const [what, target, method, body] of attempts) {
      const headers = method === 'PATCH' ? { ...as, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' } : as;
      const res = await raw(stack.gw.url, method, target, headers, body);
      assert.equal(res.status, 404, `${what} on a ${imageId === community.imageId ? 'community' : 'shared'} image's upload answered ${res.status}`);
    }
    assert.equal(await offsetAs(stack.demo, id), 0, 'the owner still has the upload, with nothing in it');
  }

  // Nor can the other project start an upload of its own into them.
  for (const { imageId } of [community, shared]) {
    const res = await create(stack.gw.url, { 'x-auth-token': stack.alt.token, 'upload-length': '10', 'upload-metadata': meta({ image_id: imageId }) });
    assert.equal(res.status, 404, JSON.stringify(res.body));
  }
});

test("Glance's own refusal to create an image (a member may not make it public) passes on as 403", async () => {
  const res = await create(stack.gw.url, {
    'x-auth-token': stack.demo.token,
    'upload-length': '10',
    'upload-metadata': meta({ name: 'wants public', disk_format: 'raw', visibility: 'public' }),
  });
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body?.error?.code, 'glance_refused');
});

/** PATCH the whole body at offset 0, as the owner. */
function patchAll(id: string, body: Buffer) {
  const headers = { ...TUS, 'x-auth-token': stack.demo.token, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' };
  return raw(stack.gw.url, 'PATCH', `/files/${id}`, headers, body);
}

test('an image switched to qcow2 in Glance after its upload was created is checked again: a backing file never goes active', { timeout: 120_000 }, async () => {
  const base = path.join(dir, 'base.raw');
  const child = path.join(dir, 'child.qcow2');
  await fsp.writeFile(base, Buffer.alloc(MiB));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', child]);
  const body = await fsp.readFile(child);
  const upload = await uploadOf(stack.demo, body.length, { disk_format: 'ami', container_format: 'ami' }); // a format not inspected
  await patchImage(stack.env, stack.demo.token, upload.imageId, { disk_format: 'qcow2', container_format: 'bare' });
  assert.equal((await patchAll(upload.id, body)).status, 204, 'the bytes pass the check against the format of the creation');
  const { status } = await waitForState(stack.gw.url, `/files/${upload.id}`, stack.demo.token, ['failed', 'active'], 60_000);
  assert.equal(status.state, 'failed');
  assert.equal(status.error?.code, 'format_changed');
  assert.match(status.error?.message ?? '', /backing file/);
  assert.equal((await getImage(stack.env, stack.demo.token, upload.imageId)).status, 'queued', 'Glance never got the bytes');
});

test('an image the gateway created goes when its upload is terminated or refused', { timeout: 120_000 }, async () => {
  const made = await create(stack.gw.url, { 'x-auth-token': stack.demo.token, 'upload-length': '4096', 'upload-metadata': meta({ name: 'to terminate', disk_format: 'raw' }) });
  assert.equal(made.status, 201);
  const del = await fetch(new URL(made.headers.get('location')!, stack.gw.url), { method: 'DELETE', headers: { ...TUS, 'x-auth-token': stack.demo.token } });
  assert.equal(del.status, 204);

  const refused = await create(stack.gw.url, { 'x-auth-token': stack.demo.token, 'upload-length': String(MiB), 'upload-metadata': meta({ name: 'to refuse', disk_format: 'qcow2' }) });
  assert.equal(refused.status, 201);
  const patch = await patchAll(refused.headers.get('location')!.split('/').pop()!, Buffer.alloc(MiB, 0x5a));
  assert.equal(patch.status, 415);

  for (const answered of [made, refused]) {
    const id = answered.headers.get('glance-image-id')!;
    let answer = 0;
    for (const deadline = Date.now() + 15_000; Date.now() < deadline && answer !== 404; await new Promise((r) => setTimeout(r, 200))) {
      answer = await imageAnswer(stack.env, stack.demo.token, id);
    }
    assert.equal(answer, 404, `image ${id} made by the gateway is deleted with its upload`);
  }
});
