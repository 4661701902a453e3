// The state-store suite must catch a store that does not check the state a move starts from.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FileStateStore } from '../../src/state/file-state-store.js';
import type { Transition } from '../../src/state/state-store.js';
import { isAllowed } from '../../src/state/transitions.js';
import { UPLOAD_STATES, type UploadRecord } from '../../src/state/upload-record.js';
import { failures } from './contract.js';
import { fileStateStores } from './file-state-stores.js';
import { stateStoreSuite } from './state-store.js';

/** Moves any record the table lets reach `to`, whatever state the caller saw. */
class IgnoresFrom extends FileStateStore {
  override transition(id: string, change: Transition): Promise<UploadRecord> {
    return super.transition(id, { ...change, from: UPLOAD_STATES.filter((state) => isAllowed(state, change.to)) });
  }
}

const right = fileStateStores();
const wrong = fileStateStores(IgnoresFrom);
after(() => Promise.all([right.cleanup(), wrong.cleanup()]));

test('a FileStateStore whose transition ignores `from` fails the state-store suite, on the checks of `from`', async () => {
  assert.deepEqual(await failures(stateStoreSuite, right.make), [], 'the real store passes every check run this way');
  const failed = await failures(stateStoreSuite, wrong.make);
  assert.ok((await wrong.make({ leaseMs: 1000 })) instanceof IgnoresFrom, 'the suite ran the wrong store');
  assert.deepEqual(failed, [
    'transition › a move from a state the record is not in is refused with the actual state; the record is unchanged',
    'transition › a move the table does not have is refused, even from the state the record is in',
    'transition › two different moves from the same state at once: exactly one wins, the other sees its state',
  ]);
});
