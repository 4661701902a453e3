// The local implementations against the contract suites (a shared backend adds its own file
// registering the same suites), and what only the local state store promises.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { after, test } from 'node:test';
import { MemoryLocker } from '@tus/server';
import { FileStateStore } from '../../src/state/file-state-store.js';
import { LeaseKeeper } from '../../src/state/lease.js';
import { MemoryTokenSource } from '../../src/state/token-source.js';
import { UploadEvents } from '../../src/state/upload-events.js';
import { newRecord } from '../../src/state/upload-record.js';
import { LocalPushQueue } from '../../src/transfer/push-queue.js';
import { PushTokens } from '../../src/transfer/push-tokens.js';
import { Trusts } from '../../src/transfer/trusts.js';
import { createLogger } from '../../src/logger.js';
import { register, sleep, until } from './contract.js';
import { fileStateStores } from './file-state-stores.js';
import { lockerSuite } from './locker.js';
import { pushQueueSuite } from './push-queue.js';
import { stateStoreSuite } from './state-store.js';
import { tokenSourceSuite } from './token-source.js';

const stores = fileStateStores();
after(() => stores.cleanup());

register('FileStateStore', stateStoreSuite, stores.make);
register('LocalPushQueue', pushQueueSuite, (concurrency, worker) => new LocalPushQueue(concurrency, worker));
register('MemoryLocker', lockerSuite, () => new MemoryLocker());
register('MemoryTokenSource', tokenSourceSuite, () => new MemoryTokenSource());
// The push's tokens over uploads without a trust: the client tokens' contract holds unchanged.
const noRecords = { get: async () => undefined, update: async () => assert.fail('nothing to update'), list: async () => [] };
const noTrusts = () =>
  new Trusts({ keystone: undefined, identify: async () => assert.fail('no trust is asked for'), store: noRecords, logger: createLogger('silent'), withoutTrust: () => undefined, granted: async () => undefined, uploadExpiryMs: 0 });
register('PushTokens', tokenSourceSuite, () => new PushTokens(new MemoryTokenSource(), noTrusts()));

test('FileStateStore: reopened, it has every record, written atomically, and no lease (only a stopped process held one)', async () => {
  const dir = await stores.dir();
  const store = await FileStateStore.open(dir, new UploadEvents());
  const record = newRecord({ id: 'u1', imageId: 'i1', projectId: 'p', userId: 'u', createdImage: false, glanceUrl: 'http://glance', diskFormat: 'raw', size: 1 });
  await store.create(record);
  await store.transition('u1', { from: 'receiving', to: 'queued' });
  const pushing = await store.transition('u1', { from: 'queued', to: 'pushing', owner: 'stopped-process' });
  assert.equal(pushing.lease?.owner, 'stopped-process');
  assert.deepEqual(await fsp.readdir(dir), ['u1.json']);

  const reopened = await FileStateStore.open(dir, new UploadEvents());
  assert.deepEqual(await reopened.get('u1'), { ...pushing, lease: null });
  const recovered = await reopened.transition('u1', { from: 'pushing', to: 'awaiting_token', owner: 'new-process' });
  assert.equal(recovered.state, 'awaiting_token');
});

test('LeaseKeeper: a running push renews its lease; once the lease is found taken, the push is told to stop', async () => {
  const store = await FileStateStore.open(await stores.dir(), new UploadEvents(), { leaseMs: 200 });
  const record = newRecord({ id: 'u2', imageId: 'i2', projectId: 'p', userId: 'u', createdImage: false, glanceUrl: 'http://glance', diskFormat: 'raw', size: 1 });
  await store.create(record);
  await store.transition('u2', { from: 'receiving', to: 'queued' });
  await store.transition('u2', { from: 'queued', to: 'pushing', owner: 'a' });
  const keeper = new LeaseKeeper(store, 'a', createLogger('silent'), 50);
  let lost = 0;
  keeper.keep('u2', () => lost++);
  try {
    await sleep(500); // more than twice the lease: renewals kept it
    await assert.rejects(store.transition('u2', { from: 'pushing', to: 'awaiting_token', owner: 'b' }), /held by a/);
    assert.equal(lost, 0);
    keeper.stop('u2');
    await sleep(250); // the lease lapses; another instance takes the upload over
    await store.transition('u2', { from: 'pushing', to: 'awaiting_token', owner: 'b' });
    await store.transition('u2', { from: 'awaiting_token', to: 'queued' });
    await store.transition('u2', { from: 'queued', to: 'pushing', owner: 'b' });
    keeper.keep('u2', () => lost++);
    await until(() => lost === 1, 'the push told its lease is lost');
    assert.equal((await store.get('u2'))?.lease?.owner, 'b');
  } finally {
    keeper.close();
  }
});
