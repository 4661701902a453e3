// What every UploadStateStore must do, whatever holds the records.
import assert from 'node:assert/strict';
import { NotFoundError, UploadExistsError } from '../../src/errors.js';
import type { UploadStateStore } from '../../src/state/state-store.js';
import { StateConflictError, TransitionNotAllowedError } from '../../src/state/transitions.js';
import { newRecord, type UploadRecord, type UploadState } from '../../src/state/upload-record.js';
import { sleep, uid, type Suite } from './contract.js';

/** A fresh store (it may share its backend with earlier ones); `leaseMs` is how long its push leases last. */
export type StateStoreFactory = (options: { leaseMs: number }) => Promise<UploadStateStore>;

const LEASE_MS = 60_000;
const SHORT_LEASE_MS = 150;
const A = 'instance-a';
const B = 'instance-b';

function record(imageId = uid('image')): UploadRecord {
  return newRecord({ id: uid('upload'), imageId, projectId: 'project', userId: 'user', createdImage: false, glanceUrl: 'http://glance', diskFormat: 'raw', size: 10 });
}

/** The moves that bring a new record to each state. */
const PATHS: Record<UploadState, UploadState[]> = {
  receiving: [], queued: ['queued'], awaiting_token: ['awaiting_token'], pushing: ['queued', 'pushing'],
  verifying: ['queued', 'pushing', 'verifying'], retrying: ['queued', 'pushing', 'retrying'],
  failed: ['queued', 'pushing', 'failed'], active: ['queued', 'pushing', 'active'],
};

/** A new record in `state`, moved there by `owner`. */
async function stored(store: UploadStateStore, state: UploadState, owner = A): Promise<UploadRecord> {
  let current = record();
  await store.create(current);
  for (const to of PATHS[state]) current = await store.transition(current.id, { from: current.state, to, owner });
  return current;
}

const open = (make: StateStoreFactory, leaseMs = LEASE_MS) => make({ leaseMs });

const conflict = (actual: UploadState, holder?: string) => (err: unknown) => {
  assert.ok(err instanceof StateConflictError, `a StateConflictError, not ${String(err)}`);
  assert.equal(err.actual, actual);
  if (holder !== undefined) assert.equal(err.holder, holder);
  return true;
};

/** Exactly one of `moves` (started together) succeeds; the rest are conflicts. */
async function oneWins(moves: Promise<unknown>[]): Promise<number> {
  const results = await Promise.allSettled(moves);
  const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
  assert.equal(won.length, 1, `exactly one move wins: ${results.map((r) => r.status).join(', ')}`);
  for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof StateConflictError, String(r.reason));
  return won[0]!;
}

export const stateStoreSuite: Suite<StateStoreFactory> = {
  create: {
    'get returns a created record as it was given; an unknown id gives undefined': async (make) => {
      const store = await open(make);
      const created = record();
      await store.create(created);
      assert.deepEqual(await store.get(created.id), created);
      assert.equal(await store.get(uid('unknown')), undefined);
    },
    'a second unfinished upload for the same image is refused with UploadExistsError; the first stays': async (make) => {
      const store = await open(make);
      const first = record();
      await store.create(first);
      const second = record(first.imageId);
      await assert.rejects(store.create(second), UploadExistsError);
      assert.equal(await store.get(second.id), undefined);
      assert.equal((await store.get(first.id))?.state, 'receiving');
    },
    'a failed upload still holds its image; an active one frees it': async (make) => {
      const store = await open(make);
      const failed = await stored(store, 'failed');
      await assert.rejects(store.create(record(failed.imageId)), UploadExistsError);
      const active = await stored(store, 'active');
      await store.create(record(active.imageId));
    },
    'two creations for one image at once: exactly one is stored': async (make) => {
      const store = await open(make);
      const imageId = uid('image');
      const tries = [record(imageId), record(imageId), record(imageId)];
      const results = await Promise.allSettled(tries.map((r) => store.create(r)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof UploadExistsError);
      const kept = (await store.list()).filter((r) => r.imageId === imageId);
      assert.equal(kept.length, 1);
    },
    'deleting an upload frees its image': async (make) => {
      const store = await open(make);
      const first = record();
      await store.create(first);
      await store.delete(first.id);
      await store.create(record(first.imageId));
    },
  },

  transition: {
    'an allowed move from the state the record is in applies the patch and returns what get returns': async (make) => {
      const store = await open(make);
      const created = record();
      await store.create(created);
      await sleep(2);
      const moved = await store.transition(created.id, { from: 'receiving', to: 'queued', patch: { attempts: 3, nextAttemptAt: null } });
      assert.equal(moved.state, 'queued');
      assert.equal(moved.attempts, 3);
      assert.ok(moved.updatedAt > created.updatedAt, 'updatedAt moves on');
      assert.deepEqual(await store.get(created.id), moved);
    },
    '`from` may name several states': async (make) => {
      const store = await open(make);
      const failed = await stored(store, 'failed');
      const moved = await store.transition(failed.id, { from: ['retrying', 'failed', 'awaiting_token'], to: 'queued' });
      assert.equal(moved.state, 'queued');
    },
    'a move from a state the record is not in is refused with the actual state; the record is unchanged': async (make) => {
      const store = await open(make);
      const queued = await stored(store, 'queued');
      await assert.rejects(store.transition(queued.id, { from: 'failed', to: 'awaiting_token' }), conflict('queued'));
      await assert.rejects(store.transition(queued.id, { from: ['retrying', 'failed'], to: 'awaiting_token' }), conflict('queued'));
      assert.deepEqual(await store.get(queued.id), queued);
    },
    'a move the table does not have is refused, even from the state the record is in': async (make) => {
      const store = await open(make);
      const queued = await stored(store, 'queued');
      await assert.rejects(store.transition(queued.id, { from: 'queued', to: 'active' }), TransitionNotAllowedError);
      const active = await stored(store, 'active');
      await assert.rejects(store.transition(active.id, { from: 'active', to: 'queued' }), TransitionNotAllowedError);
      assert.deepEqual(await store.get(queued.id), queued);
      assert.deepEqual(await store.get(active.id), active);
    },
    'a move of an unknown upload is refused with NotFoundError': async (make) => {
      const store = await open(make);
      await assert.rejects(store.transition(uid('unknown'), { from: 'receiving', to: 'queued' }), NotFoundError);
    },
    'a patch may not carry the state or the lease': async (make) => {
      const store = await open(make);
      const created = record();
      await store.create(created);
      const patch = { state: 'active', lease: null } as never;
      await assert.rejects(store.transition(created.id, { from: 'receiving', to: 'queued', patch }));
      assert.deepEqual(await store.get(created.id), created);
    },
    'two different moves from the same state at once: exactly one wins, the other sees its state': async (make) => {
      const store = await open(make);
      const retrying = await stored(store, 'retrying');
      const won = await oneWins([
        store.transition(retrying.id, { from: 'retrying', to: 'queued' }),
        store.transition(retrying.id, { from: 'retrying', to: 'awaiting_token' }),
      ]);
      assert.equal((await store.get(retrying.id))?.state, won === 0 ? 'queued' : 'awaiting_token');
    },
    'the same move twice at once: exactly one wins': async (make) => {
      const store = await open(make);
      const failed = await stored(store, 'failed');
      await oneWins([0, 1].map(() => store.transition(failed.id, { from: ['failed', 'awaiting_token'], to: 'queued' })));
    },
    'owners racing to take one upload into pushing: exactly one gets it and holds the lease': async (make) => {
      const store = await open(make);
      const queued = await stored(store, 'queued');
      const owners = ['o1', 'o2', 'o3', 'o4'];
      const won = await oneWins(owners.map((owner) => store.transition(queued.id, { from: 'queued', to: 'pushing', owner })));
      assert.equal((await store.get(queued.id))?.lease?.owner, owners[won]);
    },
  },

  update: {
    'update sets other fields, moves updatedAt on and returns what get returns': async (make) => {
      const store = await open(make);
      const created = record();
      await store.create(created);
      await sleep(2);
      const updated = await store.update(created.id, { pushed: 7, hash: { algo: 'sha512', value: 'ab' } });
      assert.equal(updated.pushed, 7);
      assert.deepEqual(updated.hash, { algo: 'sha512', value: 'ab' });
      assert.equal(updated.state, 'receiving');
      assert.ok(updated.updatedAt > created.updatedAt);
      assert.deepEqual(await store.get(created.id), updated);
    },
    'update cannot change the state or the lease': async (make) => {
      const store = await open(make);
      const queued = await stored(store, 'queued');
      await assert.rejects(store.update(queued.id, { state: 'active' } as never));
      await assert.rejects(store.update(queued.id, { lease: { owner: A, until: new Date().toISOString() } } as never));
      assert.deepEqual(await store.get(queued.id), queued);
    },
    'updates of different fields at once both land': async (make) => {
      const store = await open(make);
      const created = record();
      await store.create(created);
      await Promise.all([store.update(created.id, { pushed: 5 }), store.update(created.id, { diskFormat: 'qcow2' })]);
      const now = await store.get(created.id);
      assert.equal(now?.pushed, 5);
      assert.equal(now?.diskFormat, 'qcow2');
    },
    'a conditional update applies only while its condition holds: of several at once, one lands': async (make) => {
      const store = await open(make);
      const created = record();
      await store.create(created);
      const trusts = ['t1', 't2', 't3'];
      const only = (current: UploadRecord) => !current.trust;
      const won = await oneWins(trusts.map((id) => store.update(created.id, { trust: { id } }, only)));
      assert.deepEqual((await store.get(created.id))?.trust, { id: trusts[won] });
      await assert.rejects(store.update(created.id, { trust: { id: 't4' } }, only), StateConflictError);
    },
    'update of an unknown upload is refused with NotFoundError': async (make) => {
      const store = await open(make);
      await assert.rejects(store.update(uid('unknown'), { pushed: 1 }), NotFoundError);
    },
  },

  'delete and list': {
    'list shows every stored record': async (make) => {
      const store = await open(make);
      const made = [await stored(store, 'receiving'), await stored(store, 'queued'), await stored(store, 'active')];
      const listed = new Map((await store.list()).map((r) => [r.id, r]));
      for (const r of made) assert.deepEqual(listed.get(r.id), r);
    },
    'delete removes a record from get and list; deleting it again, or an unknown id, is a no-op': async (make) => {
      const store = await open(make);
      const gone = await stored(store, 'failed');
      await store.delete(gone.id);
      assert.equal(await store.get(gone.id), undefined);
      assert.ok(!(await store.list()).some((r) => r.id === gone.id));
      await store.delete(gone.id);
      await store.delete(uid('unknown'));
    },
  },

  leases: {
    'the move into pushing takes a lease for its owner, lasting the lease time': async (make) => {
      const store = await open(make);
      const before = Date.now();
      const pushing = await stored(store, 'pushing', A);
      assert.equal(pushing.lease?.owner, A);
      const left = Date.parse(pushing.lease!.until) - before;
      assert.ok(left > LEASE_MS - 5000 && left <= LEASE_MS + 5000, `lease for ${left} ms`);
    },
    'a move into pushing or verifying needs an owner': async (make) => {
      const store = await open(make);
      const queued = await stored(store, 'queued');
      await assert.rejects(store.transition(queued.id, { from: 'queued', to: 'pushing' }));
      assert.equal((await store.get(queued.id))?.state, 'queued');
    },
    'the lease is held through verifying and dropped by any move out': async (make) => {
      const store = await open(make);
      const verifying = await stored(store, 'verifying', A);
      assert.equal(verifying.lease?.owner, A);
      const active = await store.transition(verifying.id, { from: 'verifying', to: 'active', owner: A });
      assert.equal(active.lease, null);
    },
    'no state but pushing and verifying carries a lease': async (make) => {
      const store = await open(make);
      for (const state of ['receiving', 'queued', 'awaiting_token', 'retrying', 'failed', 'active'] as const) {
        assert.equal((await stored(store, state, A)).lease, null, state);
      }
    },
    'under a live lease another owner, or a move without one, is refused and told the holder': async (make) => {
      const store = await open(make);
      const pushing = await stored(store, 'pushing', A);
      await assert.rejects(store.transition(pushing.id, { from: 'pushing', to: 'awaiting_token', owner: B }), conflict('pushing', A));
      await assert.rejects(store.transition(pushing.id, { from: 'pushing', to: 'awaiting_token' }), conflict('pushing', A));
      assert.deepEqual(await store.get(pushing.id), pushing);
      assert.equal((await store.transition(pushing.id, { from: 'pushing', to: 'retrying', owner: A })).state, 'retrying');
    },
    'once a lease has lapsed another owner may move the upload on': async (make) => {
      const store = await open(make, SHORT_LEASE_MS);
      const pushing = await stored(store, 'pushing', A);
      await sleep(SHORT_LEASE_MS + 50);
      const taken = await store.transition(pushing.id, { from: ['pushing', 'verifying'], to: 'awaiting_token', owner: B });
      assert.equal(taken.state, 'awaiting_token');
      assert.equal(taken.lease, null);
    },
    'renewLease extends the holder’s lease and changes nothing else': async (make) => {
      const store = await open(make, SHORT_LEASE_MS);
      const pushing = await stored(store, 'pushing', A);
      await sleep(SHORT_LEASE_MS / 2);
      const renewed = await store.renewLease(pushing.id, A);
      assert.ok(renewed.lease!.until > pushing.lease!.until);
      assert.deepEqual({ ...renewed, lease: null }, { ...pushing, lease: null });
      await sleep(SHORT_LEASE_MS / 2 + 20); // past the first lease, within the renewed one
      await assert.rejects(store.transition(pushing.id, { from: 'pushing', to: 'awaiting_token', owner: B }), conflict('pushing', A));
    },
    'renewLease is refused to another owner, once the lease is dropped, and for an unknown upload': async (make) => {
      const store = await open(make);
      const pushing = await stored(store, 'pushing', A);
      await assert.rejects(store.renewLease(pushing.id, B), StateConflictError);
      await store.transition(pushing.id, { from: 'pushing', to: 'retrying', owner: A });
      await assert.rejects(store.renewLease(pushing.id, A), conflict('retrying'));
      await assert.rejects(store.renewLease(uid('unknown'), A), NotFoundError);
    },
    'renewing and moving at once: the move lands, and a renewal after it is refused': async (make) => {
      const store = await open(make);
      const pushing = await stored(store, 'pushing', A);
      const [renewal, move] = await Promise.allSettled([
        store.renewLease(pushing.id, A),
        store.transition(pushing.id, { from: 'pushing', to: 'failed', owner: A }),
      ]);
      assert.equal(move.status, 'fulfilled');
      if (renewal.status === 'rejected') assert.ok(renewal.reason instanceof StateConflictError);
      const now = await store.get(pushing.id);
      assert.equal(now?.state, 'failed');
      assert.equal(now?.lease, null);
      await assert.rejects(store.renewLease(pushing.id, A), StateConflictError);
    },
  },
};
