// tus-js-client uploads through the gateway into a (fake) Glance.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { makeFile, MiB } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const stack = fakeStack();
let dir: string;

before(async () => {
  dir = await tempDir('gw-data-');
});

test('a 64 MiB upload in 8 MiB chunks ends active in Glance with the same bytes', async () => {
  const file = await makeFile(dir, 'disk.raw', 64 * MiB);
  const image = stack.glance.createImage('project-a', { disk_format: 'raw', container_format: 'bare' });

  const result = await tusUpload(stack.gw.url, file.path, {
    token: 'token-a',
    metadata: { image_id: image.id, filename: 'disk.raw', filetype: 'application/octet-stream' },
    chunkSize: 8 * MiB,
  });
  assert.ok(['queued', 'pushing', 'awaiting_token'].includes(result.headers['glance-upload-state'] ?? ''));

  const { status } = await waitForState(stack.gw.url, result.uploadUrl, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  assert.equal(status.size, 64 * MiB);
  assert.equal(status.offset, 64 * MiB);
  assert.equal(status.pushed, 64 * MiB);

  const put = stack.glance.puts.at(-1)!;
  assert.equal(put.completed, true);
  assert.equal(put.sha256, file.sha256, 'Glance received exactly the bytes of the file');
  assert.equal(put.token, 'token-a', 'the caller token is used, not one of our own');
  assert.equal(put.headers['content-type'], 'application/octet-stream');
  assert.equal(put.headers['content-length'], String(64 * MiB));
  assert.equal(put.headers['x-openstack-image-size'], String(64 * MiB));
  assert.equal(stack.glance.image(image.id)!.status, 'active');
  assert.equal(status.glance?.checksum, put.md5);
  assert.equal(status.glance?.os_hash_value, put.sha512);
});

test('with name and disk_format the gateway creates the image and answers Glance-Image-Id', async () => {
  const file = await makeFile(dir, 'created.raw', 3 * MiB);
  const result = await tusUpload(stack.gw.url, file.path, {
    token: 'token-a',
    metadata: { name: 'created by the gateway', disk_format: 'raw', tags: 'a,b' },
    chunkSize: 1 * MiB,
  });
  const imageId = result.headers['glance-image-id'];
  assert.match(imageId ?? '', /^[0-9a-f-]{36}$/);

  const { status } = await waitForState(stack.gw.url, result.uploadUrl, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  assert.equal(status.imageId, imageId);
  const image = stack.glance.image(imageId!)!;
  assert.equal(image.name, 'created by the gateway');
  assert.equal(image.owner, 'project-a');
  assert.equal(image.container_format, 'bare');
  assert.deepEqual(image.tags, ['a', 'b']);
  assert.equal(stack.glance.puts.at(-1)!.sha256, file.sha256);
});
