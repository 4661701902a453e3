// What every PushQueue must do, wherever its entries wait.
import assert from 'node:assert/strict';
import type { PushQueue, PushWorker } from '../../src/transfer/push-queue.js';
import { sleep, uid, until, type Suite } from './contract.js';

/** A fresh, empty queue with `concurrency` slots, running `worker`. */
export type PushQueueFactory = (concurrency: number, worker: PushWorker) => PushQueue;

/** A worker whose runs each wait for `release`, recording starts, ends and the most running at once. */
function gatedWorker() {
  const runs: string[] = [];
  const running = new Set<string>();
  const gates: (() => void)[] = [];
  const state = { runs, running, most: 0, ended: 0, twice: false };
  const worker: PushWorker = async (id) => {
    if (running.has(id)) state.twice = true;
    runs.push(id);
    running.add(id);
    state.most = Math.max(state.most, running.size);
    await new Promise<void>((resolve) => gates.push(resolve));
    running.delete(id);
    state.ended++;
  };
  /** Let the oldest waiting run end. */
  const release = async () => {
    await until(() => gates.length > 0, 'a run to release');
    gates.shift()!();
    await sleep(5);
  };
  return { worker, state, release };
}

/** A worker that records and ends at once. */
function quickWorker() {
  const runs: { id: string; at: number }[] = [];
  const worker: PushWorker = async (id) => {
    runs.push({ id, at: Date.now() });
  };
  return { worker, runs, count: (id: string) => runs.filter((r) => r.id === id).length };
}

async function using(queue: PushQueue, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    await queue.close();
  }
}

export const pushQueueSuite: Suite<PushQueueFactory> = {
  add: {
    'an added upload runs once': async (make) => {
      const { worker, count } = quickWorker();
      const queue = make(2, worker);
      const id = uid('upload');
      await using(queue, async () => {
        await queue.add(id);
        await until(() => count(id) === 1, 'the run');
        await sleep(50);
        assert.equal(count(id), 1);
      });
    },
    'a second add while it waits keeps one entry': async (make) => {
      const { worker, state, release } = gatedWorker();
      const queue = make(1, worker);
      const [busy, id] = [uid('busy'), uid('upload')];
      await using(queue, async () => {
        await queue.add(busy);
        await until(() => state.runs.length === 1, 'the first run');
        await queue.add(id);
        await queue.add(id);
        assert.equal(await queue.depth(), 2);
        await release();
        await release();
        await sleep(50);
        assert.deepEqual(state.runs, [busy, id]);
      });
    },
    'adds while it runs make exactly one more run, after the running one': async (make) => {
      const { worker, state, release } = gatedWorker();
      const queue = make(2, worker);
      const id = uid('upload');
      await using(queue, async () => {
        await queue.add(id);
        await until(() => state.runs.length === 1, 'the first run');
        for (let i = 0; i < 3; i++) await queue.add(id);
        await sleep(30);
        assert.equal(state.runs.length, 1, 'not while it runs');
        await release();
        await until(() => state.runs.length === 2, 'the run after');
        await release();
        await sleep(50);
        assert.equal(state.runs.length, 2);
        assert.equal(state.twice, false, 'never two runs of one upload at once');
      });
    },
  },

  depth: {
    'depth counts waiting and running entries, and is 0 once all have run': async (make) => {
      const { worker, state, release } = gatedWorker();
      const queue = make(1, worker);
      await using(queue, async () => {
        assert.equal(await queue.depth(), 0);
        for (const id of [uid('a'), uid('b'), uid('c')]) await queue.add(id);
        await until(() => state.runs.length === 1, 'the first run');
        assert.equal(await queue.depth(), 3);
        for (let i = 0; i < 3; i++) await release();
        await until(() => state.ended === 3, 'all runs');
        await until(async () => (await queue.depth()) === 0, 'an empty queue');
      });
    },
  },

  delay: {
    'a delayed entry neither runs nor counts before its delay, and runs after it': async (make) => {
      const { worker, runs, count } = quickWorker();
      const queue = make(2, worker);
      const id = uid('upload');
      await using(queue, async () => {
        const added = Date.now();
        await queue.add(id, { delayMs: 300 });
        await sleep(150);
        assert.equal(count(id), 0);
        assert.equal(await queue.depth(), 0);
        await until(() => count(id) === 1, 'the delayed run');
        assert.ok(runs[0]!.at - added >= 290, `ran after ${runs[0]!.at - added} ms`);
      });
    },
    'an add due earlier replaces a later one: one run, at the earlier time': async (make) => {
      const { worker, runs, count } = quickWorker();
      const queue = make(2, worker);
      const id = uid('upload');
      await using(queue, async () => {
        const added = Date.now();
        await queue.add(id, { delayMs: 5000 });
        await queue.add(id, { delayMs: 100 });
        await queue.add(id, { delayMs: 2000 });
        await until(() => count(id) === 1, 'the earlier run');
        assert.ok(runs[0]!.at - added < 1500);
        await sleep(200);
        assert.equal(count(id), 1);
      });
    },
    'a delayed add while it runs makes one more run after, not before its delay': async (make) => {
      const { worker, state, release } = gatedWorker();
      const queue = make(2, worker);
      const id = uid('upload');
      await using(queue, async () => {
        await queue.add(id);
        await until(() => state.runs.length === 1, 'the first run');
        await queue.add(id, { delayMs: 300 });
        const ended = Date.now();
        await release();
        await sleep(150);
        assert.equal(state.runs.length, 1, 'not before the delay');
        await until(() => state.runs.length === 2, 'the delayed run');
        assert.ok(Date.now() - ended >= 250);
        await release();
      });
    },
  },

  remove: {
    'remove drops a waiting entry and a delayed one': async (make) => {
      const { worker, state, release } = gatedWorker();
      const queue = make(1, worker);
      const [busy, waiting, delayed] = [uid('busy'), uid('waiting'), uid('delayed')];
      await using(queue, async () => {
        await queue.add(busy);
        await until(() => state.runs.length === 1, 'the first run');
        await queue.add(waiting);
        await queue.add(delayed, { delayMs: 100 });
        await queue.remove(waiting);
        await queue.remove(delayed);
        await release();
        await sleep(250);
        assert.deepEqual(state.runs, [busy]);
        assert.equal(await queue.depth(), 0);
      });
    },
  },

  slots: {
    'never more running than the slots, and every upload runs': async (make) => {
      const { worker, state, release } = gatedWorker();
      const queue = make(2, worker);
      const ids = [1, 2, 3, 4, 5].map((n) => uid(`upload${n}`));
      await using(queue, async () => {
        for (const id of ids) await queue.add(id);
        await until(() => state.runs.length === 2, 'two runs');
        await sleep(30);
        assert.equal(state.runs.length, 2, 'the others wait');
        for (let i = 0; i < ids.length; i++) await release();
        await until(() => state.ended === ids.length, 'all runs');
        assert.equal(state.most, 2);
        assert.deepEqual([...state.runs].sort(), [...ids].sort());
      });
    },
    'a failing worker frees its slot': async (make) => {
      const ran: string[] = [];
      const queue = make(1, async (id) => {
        ran.push(id);
        throw new Error('push failed');
      });
      const [first, second] = [uid('first'), uid('second')];
      await using(queue, async () => {
        await queue.add(first);
        await queue.add(second);
        await until(() => ran.length === 2, 'both runs');
      });
    },
    'after close nothing more starts': async (make) => {
      const { worker, runs } = quickWorker();
      const queue = make(1, worker);
      await queue.add(uid('delayed'), { delayMs: 50 });
      await queue.close();
      await queue.add(uid('late'));
      await sleep(150);
      assert.deepEqual(runs, []);
    },
  },
};
