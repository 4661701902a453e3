// Storage promised to uploads: claimed atomically, capped per project, given back by an upload that stops.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { GuardedStore } from '../src/ingest/guarded-store.js';
import { FakeGlance } from './support/fake-glance.js';
import { MiB } from './support/files.js';
import { startGateway, tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';

let glance: FakeGlance;

before(async () => {
  glance = await FakeGlance.start();
});
after(async () => {
  await glance.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HUGE = String(2 ** 50);

async function freeBytes(dir: string): Promise<number> {
  const s = await fsp.statfs(dir);
  return s.bavail * s.bsize;
}

function createFor(url: string, token: string, length: number, project = token === 'token-a' ? 'project-a' : 'project-b') {
  const image = glance.createImage(project);
  return create(url, { 'x-auth-token': token, 'upload-length': String(length), 'upload-metadata': meta({ image_id: image.id }) });
}

function patch(url: string, location: string, offset: number, body: Buffer) {
  return fetch(new URL(location, url), {
    method: 'PATCH',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
    body,
  });
}

test('parallel creations never promise more than the free space', { timeout: 60_000 }, async () => {
  const dir = await tempDir();
  const gw = await startGateway({ GLANCE_URL: glance.url, MAX_UPLOAD_SIZE: HUGE, PROJECT_MAX_UNFINISHED_BYTES: HUGE }, dir);
  try {
    const size = Math.floor((await freeBytes(dir)) / 3.5); // three fit, with room to spare; a fourth does not
    const answers = await Promise.all(Array.from({ length: 10 }, () => createFor(gw.url, 'token-a', size)));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [201, 201, 201, 507, 507, 507, 507, 507, 507, 507]);
  } finally {
    await gw.close();
  }
});

test('an upload that stores nothing new gives back the space it has not used, and must find it again to go on', { timeout: 60_000 }, async () => {
  const dir = await tempDir();
  const gw = await startGateway(
    { GLANCE_URL: glance.url, MAX_UPLOAD_SIZE: HUGE, PROJECT_MAX_UNFINISHED_BYTES: HUGE, RESERVATION_IDLE_MS: '1000' },
    dir,
  );
  try {
    const hog = await createFor(gw.url, 'token-a', (await freeBytes(dir)) - 1024 * MiB); // room to spare for others' writes
    assert.equal(hog.status, 201);
    const location = hog.headers.get('location')!;
    assert.equal((await patch(gw.url, location, 0, Buffer.alloc(1))).status, 204);
    assert.equal((await createFor(gw.url, 'token-b', 2048 * MiB)).status, 507, 'the space is promised to the first upload');

    // A byte now and then is no progress worth the space of a whole image.
    for (let offset = 1; offset < 6; offset++) {
      await sleep(500);
      assert.equal((await patch(gw.url, location, offset, Buffer.alloc(1))).status, 204);
    }
    const other = await createFor(gw.url, 'token-b', 2048 * MiB);
    assert.equal(other.status, 201, 'the trickling upload gave its promise back');
    const resumed = await patch(gw.url, location, 6, Buffer.alloc(1));
    assert.equal(resumed.status, 507, 'the trickling upload cannot go on while its space is promised elsewhere');
    const head = await fetch(new URL(location, gw.url), { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
    assert.equal(head.headers.get('upload-offset'), '6', 'its stored bytes are kept');
  } finally {
    await gw.close();
  }
});

test('one project holds at most PROJECT_MAX_UNFINISHED_UPLOADS uploads not yet in Glance, and PROJECT_MAX_UNFINISHED_BYTES declared', { timeout: 60_000 }, async () => {
  const gw = await startGateway({ GLANCE_URL: glance.url, PROJECT_MAX_UNFINISHED_UPLOADS: '3', PROJECT_MAX_UNFINISHED_BYTES: String(10 * MiB) });
  try {
    const mine = [];
    for (let i = 0; i < 3; i++) {
      const res = await createFor(gw.url, 'token-a', MiB);
      assert.equal(res.status, 201);
      mine.push(res.headers.get('location')!);
    }
    const fourth = await createFor(gw.url, 'token-a', MiB);
    assert.equal(fourth.status, 413);
    assert.equal(fourth.body?.error?.code, 'quota_exceeded');

    assert.equal((await createFor(gw.url, 'token-b', 11 * MiB)).status, 413, 'over the bytes a project may declare');
    assert.equal((await createFor(gw.url, 'token-b', MiB)).status, 201, 'another project has its own share');

    const del = await fetch(new URL(mine[0]!, gw.url), { method: 'DELETE', headers: { ...TUS, 'x-auth-token': 'token-a' } });
    assert.equal(del.status, 204);
    assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 201, 'a terminated upload frees its place');
    // Complete but refused by Glance: its bytes are still held here, so it still counts.
    glance.failNextPuts({ kind: 'status', status: 403 });
    assert.equal((await patch(gw.url, mine[1]!, 0, Buffer.alloc(MiB))).status, 204);
    await waitForState(gw.url, new URL(mine[1]!, gw.url).pathname, 'token-a', 'failed');
    assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 413, 'a failed push still holds its bytes');
    assert.equal((await patch(gw.url, mine[2]!, 0, Buffer.alloc(MiB))).status, 204);
    await waitForState(gw.url, new URL(mine[2]!, gw.url).pathname, 'token-a', 'active');
    assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 201, 'an upload in Glance holds nothing here');
  } finally {
    await gw.close();
  }
});

test('a creation looks at no stored upload, however many there are', { timeout: 120_000 }, async () => {
  const gw = await startGateway({ GLANCE_URL: glance.url, PROJECT_MAX_UNFINISHED_UPLOADS: '10000' });
  const original = GuardedStore.prototype.offset;
  let looks = 0;
  try {
    for (let i = 0; i < 400; i++) assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 201);
    GuardedStore.prototype.offset = function (this: GuardedStore, id: string) {
      looks++;
      return original.call(this, id);
    };
    assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 201);
    assert.equal(looks, 0, 'the free space check read no upload');
  } finally {
    GuardedStore.prototype.offset = original;
    await gw.close();
  }
});
