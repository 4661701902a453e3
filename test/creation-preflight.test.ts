// Every row of the creation table, and nothing stored for a refusal.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { freeBytes } from '../src/ingest/disk-space.js';
import { listFiles } from './support/files.js';
import { startGateway } from './support/gateway.js';
import { create, meta } from './support/http.js';
import { fakeStack } from './support/stacks.js';

const stack = fakeStack({ MAX_UPLOAD_SIZE: String(2 ** 50) });

const queued = () => stack.glance.createImage('project-a', { disk_format: 'qcow2', container_format: 'bare' }).id;

async function assertNothingStored(): Promise<void> {
  assert.deepEqual(await listFiles(path.join(stack.gw.storageDir, 'uploads')), [], 'no upload data or info left');
  assert.deepEqual(await listFiles(path.join(stack.gw.storageDir, 'state')), [], 'no upload state left');
}

interface Row {
  case: string;
  status: number;
  code?: string;
  headers: () => Record<string, string>;
}

const rows: Row[] = [
  { case: 'no token', status: 401, code: 'token_missing', headers: () => ({ 'upload-length': '10', 'upload-metadata': meta({ image_id: queued() }) }) },
  { case: 'a token Glance rejects', status: 401, code: 'token_rejected', headers: () => ({ 'x-auth-token': 'bogus', 'upload-length': '10', 'upload-metadata': meta({ image_id: queued() }) }) },
  { case: 'an image that does not exist', status: 404, code: 'not_found', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: '0b5c1f3e-0000-4000-8000-000000000000' }) }) },
  { case: 'an image the token cannot see', status: 404, code: 'not_found', headers: () => ({ 'x-auth-token': 'token-b', 'upload-length': '10', 'upload-metadata': meta({ image_id: queued() }) }) },
  ...(['active', 'saving', 'importing', 'killed'] as const).map((state) => ({
    case: `an image that is ${state}`,
    status: 409,
    code: 'image_not_queued',
    headers: () => {
      const id = queued();
      stack.glance.setImage(id, { status: state });
      return { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: id }) };
    },
  })),
  { case: 'an image without disk_format', status: 400, code: 'image_format_missing', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a', { disk_format: null }).id }) }) },
  { case: 'an image without container_format', status: 400, code: 'image_format_missing', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a', { container_format: null }).id }) }) },
  { case: 'metadata with broken base64', status: 400, headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': 'image_id not*base64' }) },
  { case: 'both image_id and name', status: 400, code: 'invalid_metadata', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: queued(), name: 'x', disk_format: 'raw' }) }) },
  { case: 'neither image_id nor name', status: 400, code: 'invalid_metadata', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ filename: 'x.qcow2' }) }) },
  { case: 'no metadata at all', status: 400, code: 'invalid_metadata', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10' }) },
  { case: 'image_id that is not a UUID', status: 400, code: 'invalid_metadata', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: '../../etc/passwd' }) }) },
  { case: 'name without disk_format', status: 400, code: 'invalid_metadata', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ name: 'x' }) }) },
  { case: 'a disk_format Glance refuses to create', status: 400, code: 'glance_refused', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ name: 'x', disk_format: 'floppy' }) }) },
  { case: 'Upload-Length missing', status: 400, headers: () => ({ 'x-auth-token': 'token-a', 'upload-metadata': meta({ image_id: queued() }) }) },
  { case: 'Upload-Length negative', status: 400, headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '-1', 'upload-metadata': meta({ image_id: queued() }) }) },
  { case: 'Upload-Length not a number', status: 400, headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': '12abc', 'upload-metadata': meta({ image_id: queued() }) }) },
  { case: 'Upload-Length equal to MAX_UPLOAD_SIZE', status: 413, headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': String(2 ** 50), 'upload-metadata': meta({ image_id: queued() }) }) },
  { case: 'Upload-Length beyond the free space', status: 507, code: 'insufficient_storage', headers: () => ({ 'x-auth-token': 'token-a', 'upload-length': String(2 ** 50 - 1), 'upload-metadata': meta({ image_id: queued() }) }) },
];

for (const row of rows) {
  test(`creation with ${row.case} -> ${row.status}`, async () => {
    const before = stack.glance.requests.filter((r) => r.method === 'POST').length;
    const res = await create(stack.gw.url, row.headers());
    assert.equal(res.status, row.status, JSON.stringify(res.body));
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(typeof res.body?.error?.message, 'string');
    assert.ok(res.body!.error!.message.length > 0);
    if (row.code) assert.equal(res.body?.error?.code, row.code);
    assert.ok(!res.headers.get('location'), 'no upload was created');
    if (row.code !== 'glance_refused') {
      assert.equal(stack.glance.requests.filter((r) => r.method === 'POST').length, before, 'no image created in Glance');
    }
    await assertNothingStored();
  });
}

test('a second upload for an image with an unfinished one -> 409, the first is untouched', async () => {
  const id = queued();
  const first = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '100', 'upload-metadata': meta({ image_id: id }) });
  assert.equal(first.status, 201);
  assert.equal(first.headers.get('glance-image-id'), id);
  const second = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '100', 'upload-metadata': meta({ image_id: id }) });
  assert.equal(second.status, 409);
  assert.equal(second.body?.error?.code, 'upload_exists');
  assert.equal((await listFiles(path.join(stack.gw.storageDir, 'uploads'))).length, 2, 'only the first upload (data + info)');
  const del = await fetch(new URL(first.headers.get('location')!, stack.gw.url), {
    method: 'DELETE',
    headers: { 'tus-resumable': '1.0.0', 'x-auth-token': 'token-a' },
  });
  assert.equal(del.status, 204);
  await assertNothingStored();
});

test('the free-space check counts what uploads in progress still need -> 507', async () => {
  const free = await freeBytes(stack.gw.storageDir);
  const share = Math.floor(free * 0.6);
  const first = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(share), 'upload-metadata': meta({ image_id: queued() }) });
  assert.equal(first.status, 201, 'fits alone');
  const second = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(share), 'upload-metadata': meta({ image_id: queued() }) });
  assert.equal(second.status, 507, 'does not fit beside the first');
  const del = await fetch(new URL(first.headers.get('location')!, stack.gw.url), {
    method: 'DELETE',
    headers: { 'tus-resumable': '1.0.0', 'x-auth-token': 'token-a' },
  });
  assert.equal(del.status, 204);
  await assertNothingStored();
});

test('Glance unreachable -> 502, nothing stored', async () => {
  const down = await startGateway({ GLANCE_URL: 'http://127.0.0.1:9' });
  try {
    const res = await create(down.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: queued() }) });
    assert.equal(res.status, 502);
    assert.equal(res.body?.error?.code, 'glance_unreachable');
    assert.deepEqual(await listFiles(path.join(down.storageDir, 'uploads')), []);
    assert.deepEqual(await listFiles(path.join(down.storageDir, 'state')), []);
  } finally {
    await down.close();
  }
});
