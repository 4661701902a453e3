// /metrics in Prometheus text, counting what the gateway does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const stack = fakeStack();

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${stack.gw.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const values = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  return values;
}

test('uploads, bytes and pushes are counted; queue, connections and process metrics are there', async () => {
  const before = await scrape();
  const file = await makeFile(await tempDir(), 'disk.raw', 3 * MiB);
  const ok = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: stack.glance.createImage('project-a').id } });
  await waitForState(stack.gw.url, new URL(ok.uploadUrl).pathname, 'token-a', 'active');
  stack.glance.failNextPuts({ kind: 'status', status: 403 });
  const refused = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: stack.glance.createImage('project-a').id } });
  await waitForState(stack.gw.url, new URL(refused.uploadUrl).pathname, 'token-a', 'failed');
  const dropped = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '100', 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }) });
  await fetch(new URL(dropped.headers.get('location')!, stack.gw.url), { method: 'DELETE', headers: { ...TUS, 'x-auth-token': 'token-a' } });

  const after = await scrape();
  const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  assert.equal(delta('gateway_uploads_created_total'), 3);
  assert.equal(delta('gateway_uploads_finished_total'), 2);
  assert.equal(delta('gateway_uploads_terminated_total'), 1);
  assert.equal(delta('gateway_bytes_received_total'), 6 * MiB);
  assert.equal(delta('gateway_pushes_total{outcome="started",reason=""}'), 2);
  assert.equal(delta('gateway_pushes_total{outcome="succeeded",reason=""}'), 1);
  assert.equal(delta('gateway_pushes_total{outcome="failed",reason="glance_refused"}'), 1);
  assert.ok(delta('gateway_bytes_pushed_total') >= 3 * MiB);
  assert.equal(delta('gateway_push_duration_seconds_count'), 1);
  assert.equal(after.get('gateway_push_queue_depth'), 0);
  assert.ok((after.get('gateway_open_connections') ?? 0) >= 1, 'this scrape is a connection');
  assert.ok((after.get('process_resident_memory_bytes') ?? 0) > 0);
});
