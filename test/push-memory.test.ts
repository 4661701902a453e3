// A 1 GiB upload and push hold the gateway's memory flat.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { FakeGlance } from './support/fake-glance.js';
import { makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { spawnGateway, type GatewayProcess } from './support/gateway-process.js';
import { create, meta, TUS } from './support/http.js';

let glance: FakeGlance;
let gateway: GatewayProcess;
let dir: string;

before(async () => {
  glance = await FakeGlance.start();
  dir = await tempDir('gw-mem-');
  gateway = await spawnGateway({ GLANCE_URL: glance.url, STORAGE_DIR: `${dir}/storage`, LOG_LEVEL: 'info' });
});
after(async () => {
  await gateway?.stop();
  await glance.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

/** One PATCH of the whole file, streamed from disk, then wait for the push. */
async function uploadAndPush(file: string, size: number): Promise<void> {
  const image = glance.createImage('project-a');
  const created = await create(gateway.url, { 'x-auth-token': 'token-a', 'upload-length': String(size), 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(created.status, 201);
  const location = created.headers.get('location')!;
  const res = await fetch(new URL(location, gateway.url), {
    method: 'PATCH',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(size) },
    body: fs.createReadStream(file) as unknown as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  assert.equal(res.status, 204);
  const { status } = await waitForState(gateway.url, new URL(location, gateway.url).pathname, 'token-a', ['active', 'failed'], 120_000);
  assert.equal(status.state, 'active');
}

test('a 1 GiB upload and push grow the gateway RSS by less than 100 MiB', async () => {
  const warm = await makeFile(dir, 'warm.raw', 16 * MiB);
  await uploadAndPush(warm.path, 16 * MiB); // JIT, pools and sockets settle first
  const big = await makeFile(dir, 'big.raw', 1024 * MiB);

  const baseline = await gateway.rss();
  await gateway.resetPeak();
  await uploadAndPush(big.path, 1024 * MiB);
  const peak = await gateway.peakRss();

  const growth = peak - baseline;
  console.log(`gateway RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB`);
  assert.ok(growth < 100 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  assert.equal(glance.puts.at(-1)!.sha256, big.sha256);
});
