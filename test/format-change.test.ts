// An image's disk_format switched in Glance while its upload streams: the last byte waits for a new check.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MiB } from './support/files.js';
import { waitForState } from './support/gateway.js';
import { create, meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';

const stack = fakeStack({ PUSH_STREAM_STALL_MS: '10000' });

/** An upload whose streaming push is under way with half of its bytes; returns what finishes it. */
async function streamingHalfway(diskFormat: string, body: Buffer) {
  const image = stack.glance.createImage('project-a', { disk_format: diskFormat });
  const res = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': String(body.length), 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(res.status, 201);
  const url = new URL(res.headers.get('location')!, stack.gw.url);
  const patch = (offset: number, part: Buffer) =>
    fetch(url, {
      method: 'PATCH',
      headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
      body: part,
    });
  const half = body.length / 2;
  assert.equal((await patch(0, body.subarray(0, half))).status, 204);
  while (!stack.glance.puts.some((p) => p.imageId === image.id && p.bytes > 0)) await new Promise((r) => setTimeout(r, 10));
  return { image, path: url.pathname, finish: () => patch(half, body.subarray(half)) };
}

test('switched to a format the content does not match: failed (format_changed), and Glance never got the last byte', { timeout: 30_000 }, async () => {
  const { image, path, finish } = await streamingHalfway('ami', Buffer.alloc(4 * MiB, 0x5a));
  stack.glance.setImage(image.id, { disk_format: 'qcow2' });
  assert.equal((await finish()).status, 204);
  const { status, seen } = await waitForState(stack.gw.url, path, 'token-a', ['failed', 'active']);
  assert.equal(status.state, 'failed', seen.join(' -> '));
  assert.equal(status.error?.code, 'format_changed');
  assert.ok(stack.glance.puts.filter((p) => p.imageId === image.id).every((p) => !p.completed), 'no PUT was completed');
  assert.equal(stack.glance.image(image.id)?.status, 'queued');
});

test('switched to a format the content matches: the push goes on to active', { timeout: 30_000 }, async () => {
  const { image, path, finish } = await streamingHalfway('ami', Buffer.alloc(4 * MiB, 0x5a));
  stack.glance.setImage(image.id, { disk_format: 'raw' });
  assert.equal((await finish()).status, 204);
  const { status } = await waitForState(stack.gw.url, path, 'token-a', ['failed', 'active']);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
});
