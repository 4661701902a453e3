// Storage promised to uploads: claimed atomically, capped per project, given back by an upload that stops.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { IngestFileStore } from '../src/ingest/file-store.js';
import { FakeGlance } from './support/fake-glance.js';
import { MiB } from './support/files.js';
import { startGateway, tempDir } from './support/gateway.js';
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
    const hog = await createFor(gw.url, 'token-a', (await freeBytes(dir)) - 64 * MiB);
    assert.equal(hog.status, 201);
    const location = hog.headers.get('location')!;
    assert.equal((await patch(gw.url, location, 0, Buffer.alloc(1))).status, 204);
    assert.equal((await createFor(gw.url, 'token-b', 128 * MiB)).status, 507, 'the space is promised to the first upload');

    await sleep(2500);
    const other = await createFor(gw.url, 'token-b', 128 * MiB);
    assert.equal(other.status, 201, 'the idle upload gave its promise back');
    const resumed = await patch(gw.url, location, 1, Buffer.alloc(1));
    assert.equal(resumed.status, 507, 'the idle upload cannot go on while its space is promised elsewhere');
    const head = await fetch(new URL(location, gw.url), { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
    assert.equal(head.headers.get('upload-offset'), '1', 'its stored byte is kept');
  } finally {
    await gw.close();
  }
});

test('one project holds at most PROJECT_MAX_UNFINISHED_UPLOADS unfinished uploads and PROJECT_MAX_UNFINISHED_BYTES declared', { timeout: 60_000 }, async () => {
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
    assert.equal((await patch(gw.url, mine[1]!, 0, Buffer.alloc(MiB))).status, 204);
    assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 201, 'a complete upload is no longer unfinished');
  } finally {
    await gw.close();
  }
});

test('a creation looks at no stored upload, however many there are', { timeout: 120_000 }, async () => {
  const gw = await startGateway({ GLANCE_URL: glance.url, PROJECT_MAX_UNFINISHED_UPLOADS: '10000' });
  const original = IngestFileStore.prototype.offset;
  let looks = 0;
  try {
    for (let i = 0; i < 400; i++) assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 201);
    IngestFileStore.prototype.offset = function (this: IngestFileStore, id: string) {
      looks++;
      return original.call(this, id);
    };
    assert.equal((await createFor(gw.url, 'token-a', MiB)).status, 201);
    assert.equal(looks, 0, 'the free space check read no upload');
  } finally {
    IngestFileStore.prototype.offset = original;
    await gw.close();
  }
});
