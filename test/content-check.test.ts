// The first bytes are matched against disk_format, and the whole file once complete; a refusal is 415 and removes the upload.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { listFiles, makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { differencingVhd, qemuImg, vhdxWithParent } from './support/qemu.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const stack = fakeStack();
let dir: string;
let qcow2: string;
let withBacking: string;

before(async () => {
  dir = await tempDir('gw-images-');
  const raw = await makeFile(dir, 'data.raw', 4 * MiB);
  qcow2 = path.join(dir, 'real.qcow2');
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', raw.path, qcow2);
  withBacking = path.join(dir, 'overlay.qcow2');
  qemuImg('create', '-f', 'qcow2', '-b', qcow2, '-F', 'qcow2', withBacking);
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Create an upload for a new image of `diskFormat` and send the whole file in one PATCH. */
async function sendAs(file: string | Buffer, diskFormat: string) {
  const body = typeof file === 'string' ? await fsp.readFile(file) : file;
  const image = stack.glance.createImage('project-a', { disk_format: diskFormat, container_format: 'bare' });
  const created = await create(stack.gw.url, {
    'x-auth-token': 'token-a',
    'upload-length': String(body.length),
    'upload-metadata': meta({ image_id: image.id }),
  });
  assert.equal(created.status, 201);
  const uploadUrl = new URL(created.headers.get('location')!, stack.gw.url).toString();
  const patch = await fetch(uploadUrl, {
    method: 'PATCH',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
    body,
  });
  const json = (await patch.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  return { uploadUrl, imageId: image.id, status: patch.status, json, headers: patch.headers };
}

async function assertRemoved(uploadUrl: string): Promise<void> {
  const head = await fetch(uploadUrl, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.equal(head.status, 404, 'a refused upload cannot be resumed');
  const id = uploadUrl.split('/').pop()!;
  const left = [...(await listFiles(path.join(stack.gw.storageDir, 'uploads'))), ...(await listFiles(path.join(stack.gw.storageDir, 'state')))];
  assert.deepEqual(left.filter((f) => f.startsWith(id)), [], 'no data, info or state left');
}

test('a qcow2 declared raw -> 415, upload removed', async () => {
  const res = await sendAs(qcow2, 'raw');
  assert.equal(res.status, 415);
  assert.equal(res.json?.error?.code, 'content_mismatch');
  assert.match(res.json!.error!.message, /qcow2/);
  await assertRemoved(res.uploadUrl);
});

test('random bytes declared qcow2 -> 415, upload removed', async () => {
  const random = await makeFile(dir, 'random.bin', 2 * MiB);
  const res = await sendAs(random.path, 'qcow2');
  assert.equal(res.status, 415);
  assert.match(res.json!.error!.message, /qcow2/);
  await assertRemoved(res.uploadUrl);
});

test('a qcow2 with a backing file -> 415, upload removed', async () => {
  const res = await sendAs(withBacking, 'qcow2');
  assert.equal(res.status, 415);
  assert.match(res.json!.error!.message, /backing/);
  await assertRemoved(res.uploadUrl);
});

test('random bytes declared vhd are refused at the end (no footer) -> 415, upload removed', async () => {
  const random = await makeFile(dir, 'random.vhd', 1 * MiB);
  const res = await sendAs(random.path, 'vhd');
  assert.equal(res.status, 415);
  await assertRemoved(res.uploadUrl);
});

test('a real qcow2 declared qcow2 passes and ends active', async () => {
  const res = await sendAs(qcow2, 'qcow2');
  assert.equal(res.status, 204);
  const { status } = await waitForState(stack.gw.url, new URL(res.uploadUrl).pathname, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
});

/** A 415 naming `reason`, the upload gone, and nothing of it in Glance. */
async function assertRefused(res: Awaited<ReturnType<typeof sendAs>>, reason: RegExp): Promise<void> {
  assert.equal(res.status, 415);
  assert.equal(res.json?.error?.code, 'content_mismatch');
  assert.match(res.json!.error!.message, reason);
  await assertRemoved(res.uploadUrl);
  // A streaming push may have begun (and been cut off) once bytes passed the head: it never completes.
  assert.notEqual(stack.glance.image(res.imageId)?.status, 'active', 'never active');
  assert.deepEqual(stack.glance.puts.filter((p) => p.imageId === res.imageId && p.completed), [], 'nothing pushed');
}

/** qemu-img's output in the test directory, read back. */
async function made(name: string, ...args: string[]): Promise<Buffer> {
  qemuImg('create', ...args, path.join(dir, name), '1M');
  return fsp.readFile(path.join(dir, name));
}

const HOST_FILE_DESCRIPTOR =
  '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n' +
  'RW 2048 FLAT "/etc/passwd" 0\n';

test('a vmdk descriptor naming a host file, declared vmdk -> 415', async () => {
  await assertRefused(await sendAs(Buffer.from(HOST_FILE_DESCRIPTOR), 'vmdk'), /vmdk is a text descriptor only/);
});

test('a sparse vmdk with a parent -> 415', async () => {
  await made('base.vmdk', '-f', 'vmdk');
  const child = await made('child.vmdk', '-f', 'vmdk', '-b', path.join(dir, 'base.vmdk'), '-F', 'vmdk');
  await assertRefused(await sendAs(child, 'vmdk'), /vmdk image has a parent \(parentFileNameHint\)/);
});

test('a vmdk descriptor without the "# Disk DescriptorFile" line, declared raw -> 415', async () => {
  const body = Buffer.concat([Buffer.from('# made by hand\nversion=1\nRW 2048 FLAT "/etc/passwd" 0\n'), Buffer.alloc(64 * 1024)]);
  await assertRefused(await sendAs(body, 'raw'), /data is vmdk but disk_format is raw/);
});

test('a qed with a backing file -> 415', async () => {
  await made('base.qed', '-f', 'qed');
  const child = await made('child.qed', '-f', 'qed', '-b', path.join(dir, 'base.qed'), '-F', 'qed');
  await assertRefused(await sendAs(child, 'qed'), /qed image has a backing file/);
});

test('a differencing vhd -> 415', async () => {
  await assertRefused(await sendAs(differencingVhd(await made('dynamic.vhd', '-f', 'vpc')), 'vhd'), /differencing disk: it has a parent/);
});

test('a vhdx with a parent passes the head and is refused when complete: 415, never active, nothing pushed', async () => {
  const child = vhdxWithParent(await made('plain.vhdx', '-f', 'vhdx'));
  await assertRefused(await sendAs(child, 'vhdx'), /vhdx image has a parent/);
});

test('a fixed vhd larger than the head passes on its real footer and ends active', async () => {
  const res = await sendAs(await made('fixed.vhd', '-f', 'vpc', '-o', 'subformat=fixed'), 'vhd');
  assert.equal(res.status, 204);
  const { status } = await waitForState(stack.gw.url, new URL(res.uploadUrl).pathname, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
});

async function patch(uploadUrl: string, offset: number, body: Buffer): Promise<number> {
  const res = await fetch(uploadUrl, {
    method: 'PATCH',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
    body,
  });
  await res.arrayBuffer();
  return res.status;
}

async function createFor(body: Buffer, diskFormat: string): Promise<string> {
  const image = stack.glance.createImage('project-a', { disk_format: diskFormat, container_format: 'bare' });
  const created = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(body.length), 'upload-metadata': meta({ image_id: image.id }) });
  return new URL(created.headers.get('location')!, stack.gw.url).toString();
}

test('the head is judged across PATCHes: a 4-byte first PATCH is held open, the next one is refused', async () => {
  const body = await fsp.readFile(withBacking);
  const uploadUrl = await createFor(body, 'qcow2');
  assert.equal(await patch(uploadUrl, 0, body.subarray(0, 4)), 204, 'the magic alone cannot decide yet');
  assert.equal(await patch(uploadUrl, 4, body.subarray(4)), 415, 'the backing file shows in the next bytes');
  await assertRemoved(uploadUrl);
});

test('vhdx in PATCHes: one with a parent is refused by the PATCH that stores its metadata; a plain one ends active', async () => {
  const plain = await made('early.vhdx', '-f', 'vhdx');
  const child = vhdxWithParent(plain);
  const refused = await createFor(child, 'vhdx');
  assert.equal(await patch(refused, 0, child.subarray(0, 1 * MiB)), 204, 'the metadata (at 3 MiB) is not there yet');
  assert.equal(await patch(refused, 1 * MiB, child.subarray(1 * MiB, 4 * MiB)), 415, 'refused before the rest is sent');
  await assertRemoved(refused);

  const passed = await createFor(plain, 'vhdx');
  assert.equal(await patch(passed, 0, plain.subarray(0, 4 * MiB)), 204);
  assert.equal(await patch(passed, 4 * MiB, plain.subarray(4 * MiB)), 204);
  const { status } = await waitForState(stack.gw.url, new URL(passed).pathname, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
});

test('a real qcow2 sent in tiny first PATCHes passes', async () => {
  const body = await fsp.readFile(qcow2);
  const uploadUrl = await createFor(body, 'qcow2');
  assert.equal(await patch(uploadUrl, 0, body.subarray(0, 4)), 204);
  assert.equal(await patch(uploadUrl, 4, body.subarray(4, 1000)), 204);
  assert.equal(await patch(uploadUrl, 1000, body.subarray(1000)), 204);
  const { status } = await waitForState(stack.gw.url, new URL(uploadUrl).pathname, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active');
  assert.equal(stack.glance.puts.at(-1)!.bytes, body.length);
});

test('tus-js-client sees the 415 and does not retry it', async () => {
  const random = await makeFile(dir, 'random2.bin', 2 * MiB);
  const err = await tusUpload(stack.gw.url, random.path, {
    token: 'token-a',
    metadata: { name: 'not a qcow2', disk_format: 'qcow2' },
    chunkSize: 1 * MiB,
  }).then(
    () => assert.fail('upload should have been refused'),
    (e: { originalResponse?: { getStatus(): number; getBody(): string } }) => e,
  );
  assert.equal(err.originalResponse?.getStatus(), 415);
  assert.match(err.originalResponse!.getBody(), /content_mismatch/);
});

test('a chunked first PATCH longer than the upload -> 413 while the head is being judged; the gateway lives on', async () => {
  const image = stack.glance.createImage('project-a', { disk_format: 'raw', container_format: 'bare' });
  const created = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '1000', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(created.status, 201);
  const uploadUrl = new URL(created.headers.get('location')!, stack.gw.url).toString();
  const body = new ReadableStream({
    pull(controller) {
      controller.enqueue(new Uint8Array(16 * 1024).fill(1)); // no Content-Length: tus cannot refuse it up front
    },
  });
  const patch = await fetch(uploadUrl, {
    method: 'PATCH',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
    body,
    duplex: 'half',
  } as RequestInit);
  assert.equal(patch.status, 413);
  const head = await fetch(uploadUrl, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.equal(head.status, 200, 'still serving, and the upload is still there');
});
