// A flaky client link that drops every 8-32 MiB and stalls for seconds now and then.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { fakeStack } from './support/stacks.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { tusUpload } from './support/tus.js';

const stack = fakeStack({ LOG_LEVEL: 'info' });
let proxy: TcpProxy;
let dir: string;

before(async () => {
  await stack.ready;
  proxy = await TcpProxy.start(stack.gw.url);
  dir = await tempDir('gw-flaky-');
});
after(async () => {
  await proxy.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

test('256 MiB through a link that drops every 8-32 MiB and stalls: active, same SHA-256', { timeout: 300_000 }, async () => {
  const file = await makeFile(dir, 'flaky.raw', 256 * MiB);
  proxy.setFaults({ cutEvery: [8 * MiB, 32 * MiB], stallEvery: { bytes: [48 * MiB, 96 * MiB], ms: 2500 } });
  const image = stack.glance.createImage('project-a');

  const result = await tusUpload(proxy.url, file.path, {
    token: 'token-a',
    metadata: { image_id: image.id },
    // One PATCH per attempt: every cut loses a request mid-body, never a whole chunk.
    retryDelays: [0, 250, 500, 1000, 1000, 1000],
  });
  proxy.setFaults({});

  assert.ok(proxy.stats.cuts >= 5, `the link was cut ${proxy.stats.cuts} times`);
  assert.ok(proxy.stats.stalls >= 1, 'the link stalled');
  const { status } = await waitForState(stack.gw.url, new URL(result.uploadUrl).pathname, 'token-a', ['active', 'failed'], 120_000);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  const put = stack.glance.puts.at(-1)!;
  assert.equal(put.bytes, 256 * MiB);
  assert.equal(put.sha256, file.sha256, 'no byte lost, torn or duplicated');
});
