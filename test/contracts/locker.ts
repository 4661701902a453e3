// What every tus Locker must do for the gateway: one request per upload at a time, and a holder
// that is asked to let go when another request comes.
import assert from 'node:assert/strict';
import type { Locker } from '@tus/utils';
import { sleep, uid, until, type Suite } from './contract.js';

/** A locker (it may share its backend with earlier ones). */
export type LockerFactory = () => Locker;

const never = () => new AbortController().signal;
const noop = () => undefined;

export const lockerSuite: Suite<LockerFactory> = {
  lock: {
    'lock and unlock; the lock can then be taken again': async (make) => {
      const lock = make().newLock(uid('upload'));
      await lock.lock(never(), noop);
      await lock.unlock();
      await lock.lock(never(), noop);
      await lock.unlock();
    },
    'a second lock on the same upload waits until the holder unlocks': async (make) => {
      const locker = make();
      const id = uid('upload');
      const holder = locker.newLock(id);
      await holder.lock(never(), noop);
      let taken = false;
      const second = locker.newLock(id);
      const waiting = second.lock(never(), noop).then(() => (taken = true));
      await sleep(100);
      assert.equal(taken, false, 'still waiting');
      await holder.unlock();
      await waiting;
      await second.unlock();
    },
    'locks on different uploads do not wait for each other': async (make) => {
      const locker = make();
      const a = locker.newLock(uid('a'));
      const b = locker.newLock(uid('b'));
      await a.lock(never(), noop);
      await b.lock(never(), noop);
      await Promise.all([a.unlock(), b.unlock()]);
    },
  },

  release: {
    'a competing lock makes the holder’s requestRelease fire; the holder then lets go': async (make) => {
      const locker = make();
      const id = uid('upload');
      const holder = locker.newLock(id);
      let asked = 0;
      await holder.lock(never(), async () => {
        asked++;
        if (asked === 1) await holder.unlock();
      });
      const second = locker.newLock(id);
      await second.lock(never(), noop);
      assert.ok(asked >= 1);
      await second.unlock();
    },
    'aborting its signal ends a waiting lock with an error; the holder keeps the lock': async (make) => {
      const locker = make();
      const id = uid('upload');
      const holder = locker.newLock(id);
      await holder.lock(never(), noop);
      const stop = new AbortController();
      const waiting = locker.newLock(id).lock(stop.signal, noop);
      await sleep(50);
      stop.abort();
      await assert.rejects(waiting);
      let third = false;
      const next = locker.newLock(id);
      const queued = next.lock(never(), noop).then(() => (third = true));
      await sleep(50);
      assert.equal(third, false, 'the holder still holds it');
      await holder.unlock();
      await until(() => third, 'the next lock');
      await queued;
      await next.unlock();
    },
  },
};
