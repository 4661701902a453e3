// The gateway's rules around a data store, and the local store underneath, without HTTP.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Upload } from '@tus/utils';
import { ContentMismatchError, InsufficientStorageError } from '../src/errors.js';
import { GuardedStore } from '../src/ingest/guarded-store.js';
import { LocalFiles } from '../src/storage/local-files.js';
import { tempDir } from './support/gateway.js';

let dir: string;
before(async () => {
  dir = await tempDir('gw-store-');
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

let next = 0;
const bytes = (n: number, fill = 1) => Buffer.alloc(n, fill);

/** A GuardedStore over `inner` with everything it tells recorded; `claims` is what describe answers. */
function guarded(inner: LocalFiles, expiryMs = 0, claims: Record<string, { diskFormat: string; size: number }> = {}) {
  const store = new GuardedStore(inner, { expiryMs, describe: async (id) => claims[id] });
  const told: string[] = [];
  store.events.on('written', (n) => void told.push(`written ${n}`));
  store.events.on('stored', (id, offset) => void told.push(`stored ${id} ${offset}`));
  store.events.on('removed', async (id) => {
    await new Promise((r) => setTimeout(r, 10)); // removal is awaited before anyone is answered
    told.push(`removed ${id}`);
  });
  return { store, told };
}

async function created(store: GuardedStore, size: number): Promise<string> {
  const id = `upload-${next++}`;
  await store.create(new Upload({ id, size, offset: 0, metadata: {} }));
  return id;
}

test('expiry counts from the last write, spares complete uploads, and removal is told before it returns', async () => {
  const { store, told } = guarded(new LocalFiles(dir), 1000);
  assert.ok(store.hasExtension('expiration'));
  assert.ok(!store.hasExtension('creation-defer-length'));
  const idle = await created(store, 10);
  const complete = await created(store, 4);
  assert.equal(await store.write(Readable.from([bytes(4)]), complete, 0), 4);
  const old = new Date(Date.now() - 5000);
  for (const id of [idle, complete]) await fsp.utimes(path.join(dir, id), old, old);

  assert.equal((await store.getUpload(idle)).creation_date, old.toISOString());
  assert.equal((await store.getUpload(complete)).creation_date, undefined);
  assert.equal(await store.deleteExpired(), 1);
  assert.deepEqual(told.slice(-1), [`removed ${idle}`]);
  await assert.rejects(store.getUpload(idle));
  assert.equal((await store.getUpload(complete)).offset, 4);
});

test('a full disk is a 507 that keeps every byte stored before it', async () => {
  class FillsUp extends LocalFiles {
    override async write(readable: Readable, id: string, offset: number): Promise<number> {
      await super.write(Readable.from([bytes(3, 7)]), id, offset);
      readable.resume();
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    }
  }
  const { store, told } = guarded(new FillsUp(dir));
  const id = await created(store, 10);
  await assert.rejects(store.write(Readable.from([bytes(10)]), id, 0), InsufficientStorageError);
  assert.equal(await store.offset(id), 3);
  assert.deepEqual(told, ['written 3'], 'counted, but no stored offset reported');
});

test('a listener of `writing` refuses a write before any byte is stored', async () => {
  const { store } = guarded(new LocalFiles(dir));
  store.events.on('writing', async () => {
    throw new InsufficientStorageError('reservation lapsed');
  });
  const id = await created(store, 10);
  await assert.rejects(store.write(Readable.from([bytes(10)]), id, 0), /reservation lapsed/);
  assert.equal(await store.offset(id), 0);
});

test('bytes that do not match the declared format are refused unstored, and the upload is removed', async () => {
  const inner = new LocalFiles(dir);
  const claims: Record<string, { diskFormat: string; size: number }> = {};
  const { store, told } = guarded(inner, 0, claims);
  const id = await created(store, 4096);
  claims[id] = { diskFormat: 'qcow2', size: 4096 };
  await assert.rejects(store.write(Readable.from([bytes(4096, 0x5a)]), id, 0), ContentMismatchError);
  assert.deepEqual(told, ['written 0', `removed ${id}`]);
  await assert.rejects(inner.offset(id));
});

test('the local store reads ranges, follows into one buffer, frees pushed data and reports free space', async () => {
  const files = new LocalFiles(dir);
  const { store } = guarded(files);
  const id = await created(store, 8);
  await store.write(Readable.from([Buffer.from('abcdefgh')]), id, 0);

  const read = async (range?: { start?: number; end?: number }) => Buffer.concat(await files.read(id, range).toArray()).toString();
  assert.equal(await read(), 'abcdefgh');
  assert.equal(await read({ start: 2, end: 5 }), 'cde');
  assert.equal(await read({ start: 5, end: 5 }), '');

  const buffer = Buffer.alloc(3);
  const chunks: string[] = [];
  for await (const chunk of files.followInto(id, buffer, { size: 8, stallMs: 1000 })) {
    assert.equal(chunk.buffer, buffer.buffer, 'a view of the one buffer');
    chunks.push(chunk.toString());
  }
  assert.deepEqual(chunks, ['abc', 'def', 'gh']);

  await files.release(id);
  assert.equal(await files.offset(id), 8, 'the offset stays');
  assert.equal((await fsp.stat(path.join(dir, id))).blocks, 0, 'the blocks are gone');
  assert.ok((await files.capacity()) > 0);
});
