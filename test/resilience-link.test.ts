// A flaky client link that drops every 8-32 MiB and stalls for seconds now and then.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { FakeGlance } from './support/fake-glance.js';
import { makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState, type TestGateway } from './support/gateway.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { tusUpload } from './support/tus.js';

let glance: FakeGlance;
let gw: TestGateway;
let proxy: TcpProxy;
let dir: string;

before(async () => {
  glance = await FakeGlance.start();
  gw = await startGateway({ GLANCE_URL: glance.url, LOG_LEVEL: 'info' });
  proxy = await TcpProxy.start(gw.url);
  dir = await tempDir('gw-flaky-');
});
after(async () => {
  await proxy.stop();
  await gw.close();
  await glance.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

test('256 MiB through a link that drops every 8-32 MiB and stalls: active, same SHA-256', { timeout: 300_000 }, async () => {
  const file = await makeFile(dir, 'flaky.raw', 256 * MiB);
  proxy.setFaults({ cutEvery: [8 * MiB, 32 * MiB], stallEvery: { bytes: [48 * MiB, 96 * MiB], ms: 2500 } });
  const image = glance.createImage('project-a');

  const result = await tusUpload(proxy.url, file.path, {
    token: 'token-a',
    metadata: { image_id: image.id },
    // One PATCH per attempt: every cut loses a request mid-body, never a whole chunk.
    retryDelays: [0, 250, 500, 1000, 1000, 1000],
  });
  proxy.setFaults({});

  assert.ok(proxy.stats.cuts >= 5, `the link was cut ${proxy.stats.cuts} times`);
  assert.ok(proxy.stats.stalls >= 1, 'the link stalled');
  const { status } = await waitForState(gw.url, new URL(result.uploadUrl).pathname, 'token-a', ['active', 'failed'], 120_000);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  const put = glance.puts.at(-1)!;
  assert.equal(put.bytes, 256 * MiB);
  assert.equal(put.sha256, file.sha256, 'no byte lost, torn or duplicated');
});
