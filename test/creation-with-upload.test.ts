// A creation that does not answer 201 leaves nothing behind: the client never learnt the upload's URL.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { listFiles } from './support/files.js';
import { create, meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';

const stack = fakeStack();

const stored = () => listFiles(path.join(stack.gw.storageDir, 'uploads'));

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 10_000; !(await probe()); await new Promise((r) => setTimeout(r, 50))) {
    assert.ok(Date.now() < deadline, what);
  }
}

test('a creation-with-upload whose body is longer than Upload-Length: 413, and the image can be uploaded again at once', async () => {
  const image = stack.glance.createImage('project-a');
  const before = await stored();
  const res = await fetch(`${stack.gw.url}/files/`, {
    method: 'POST',
    headers: { ...TUS, 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: image.id }), 'content-type': 'application/offset+octet-stream' },
    body: Buffer.alloc(20),
  });
  assert.equal(res.status, 413);
  assert.equal(res.headers.get('location'), null);
  await until('the refused upload is removed', async () => (await stored()).length === before.length);

  const again = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(again.status, 201, JSON.stringify(again.body));
});

test('a client that drops in the middle of a creation-with-upload leaves no upload; the retry is created', async () => {
  const image = stack.glance.createImage('project-a');
  const before = await stored();
  const { port } = new URL(stack.gw.url);
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const head = [
    'POST /files/ HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Tus-Resumable: 1.0.0',
    'X-Auth-Token: token-a',
    `Upload-Length: ${1 << 20}`,
    `Upload-Metadata: ${meta({ image_id: image.id })}`,
    'Content-Type: application/offset+octet-stream',
    `Content-Length: ${1 << 20}`,
  ].join('\r\n');
  socket.write(`${head}\r\n\r\n`);
  socket.write(Buffer.alloc(100 * 1024, 1));
  await until('the upload was created', async () => (await stored()).length > before.length);
  socket.destroy();

  await until('the upload the client never heard of is removed', async () => (await stored()).length === before.length);
  const again = await create(stack.gw.url, { 'x-auth-token': 'token-a', 'upload-length': '10', 'upload-metadata': meta({ image_id: image.id }) });
  assert.equal(again.status, 201, JSON.stringify(again.body));
});
