// A disk that fills up, and two clients writing the same upload at once.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FakeGlance } from './support/fake-glance.js';
import { makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState, type TestGateway } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { patchWith, trickle } from './support/slow-body.js';
import { tusUpload } from './support/tus.js';

let glance: FakeGlance;
let dir: string;

before(async () => {
  glance = await FakeGlance.start();
  dir = await tempDir('gw-storage-');
});
after(async () => {
  await glance.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function head(gw: TestGateway, location: string): Promise<number> {
  const res = await fetch(new URL(location, gw.url), { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.equal(res.status, 200);
  return Number(res.headers.get('upload-offset'));
}

async function assertStoredPrefix(storage: string, location: string, source: string, offset: number): Promise<void> {
  const stored = await fsp.readFile(path.join(storage, 'uploads', location.split('/').pop()!));
  assert.equal(stored.length, offset);
  assert.ok(stored.equals((await fsp.readFile(source)).subarray(0, offset)), 'the stored bytes are the first bytes of the file');
}

test('a disk that fills up mid-PATCH: 507, every byte written before kept, the upload resumes once space is back', { timeout: 120_000 }, async () => {
  // A real small filesystem, so that the kernel says ENOSPC (needs root, as in CI).
  const mnt = path.join(dir, 'small');
  await fsp.mkdir(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt]);
  const gw = await startGateway({ GLANCE_URL: glance.url }, path.join(mnt, 'storage'));
  try {
    const file = await makeFile(dir, 'big.raw', 24 * MiB);
    const tooBig = await create(gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(64 * MiB), 'upload-metadata': meta({ image_id: glance.createImage('project-a').id }) });
    assert.equal(tooBig.status, 507, 'a declared size that does not fit is refused at creation');

    const image = glance.createImage('project-a');
    const created = await create(gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(24 * MiB), 'upload-metadata': meta({ image_id: image.id }) });
    assert.equal(created.status, 201);
    const location = created.headers.get('location')!;
    await fsp.writeFile(path.join(mnt, 'ballast'), Buffer.alloc(26 * MiB)); // someone else fills the disk

    const res = await patchWith(new URL(location, gw.url).toString(), 'token-a', 0, 24 * MiB, trickle(file.path, 0, 24 * MiB, MiB, 0).body);
    assert.equal(res.status, 507);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'insufficient_storage');
    const offset = await head(gw, location);
    assert.ok(offset > 0 && offset < 24 * MiB, `offset ${offset}`);
    await assertStoredPrefix(gw.storageDir, location, file.path, offset);

    await fsp.rm(path.join(mnt, 'ballast'));
    await tusUpload(gw.url, file.path, { token: 'token-a', metadata: {}, uploadUrl: new URL(location, gw.url).toString() });
    const { status } = await waitForState(gw.url, location, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
    assert.equal(glance.puts.filter((p) => p.imageId === image.id).at(-1)!.sha256, file.sha256);
  } finally {
    await gw.close();
    execFileSync('umount', ['-l', mnt]);
  }
});

test('two clients PATCHing the same upload at once: one wins, the other gets the tus answer, no byte corrupted', { timeout: 120_000 }, async () => {
  const gw = await startGateway({ GLANCE_URL: glance.url });
  try {
    const file = await makeFile(dir, 'shared.raw', 16 * MiB);
    const image = glance.createImage('project-a');
    const created = await create(gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(16 * MiB), 'upload-metadata': meta({ image_id: image.id }) });
    const url = new URL(created.headers.get('location')!, gw.url).toString();

    const first = trickle(file.path, 0, 16 * MiB, 256 * 1024, 20);
    const firstDone = patchWith(url, 'token-a', 0, 16 * MiB, first.body).then((r) => r.status, () => 'cut');
    await first.sent(2 * MiB);
    const second = await patchWith(url, 'token-a', 0, 16 * MiB, trickle(file.path, 0, 16 * MiB, MiB, 0).body).then((r) => r.status, () => 'cut');
    const outcomes = [await firstDone, second];

    // tus: the newcomer asks the holder to let go; the holder stops and answers 204 for what it stored,
    // the newcomer then finds the offset moved and gets 409.
    assert.deepEqual(outcomes, [204, 409]);
    const offset = await head(gw, url);
    await assertStoredPrefix(gw.storageDir, url, file.path, offset);

    await tusUpload(gw.url, file.path, { token: 'token-a', metadata: {}, uploadUrl: url });
    const { status } = await waitForState(gw.url, new URL(url).pathname, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
    assert.equal(glance.puts.filter((p) => p.imageId === image.id).at(-1)!.sha256, file.sha256);
  } finally {
    await gw.close();
  }
});
