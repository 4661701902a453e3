// What every TokenSource must do: the freshest token per upload, and forgetting one Glance refused.
import assert from 'node:assert/strict';
import type { TokenSource } from '../../src/state/token-source.js';
import { uid, type Suite } from './contract.js';

/** A token source (it may share its backend with earlier ones). */
export type TokenSourceFactory = () => TokenSource;

export const tokenSourceSuite: Suite<TokenSourceFactory> = {
  tokens: {
    'an upload nobody sent a token for has none': async (make) => {
      assert.equal(await make().tokenFor(uid('upload')), undefined);
    },
    'the last token remembered is the one given': async (make) => {
      const tokens = make();
      const id = uid('upload');
      await tokens.remember(id, 'token-1');
      assert.equal(await tokens.tokenFor(id), 'token-1');
      await tokens.remember(id, 'token-2');
      assert.equal(await tokens.tokenFor(id), 'token-2');
    },
    'a token about to expire is not given; has() says what tokenFor would': async (make) => {
      const tokens = make();
      const id = uid('upload');
      assert.equal(await tokens.has(id), false);
      await tokens.remember(id, 'token-1', Date.now() + 3_600_000);
      assert.equal(await tokens.has(id), true);
      await tokens.remember(id, 'token-2', Date.now() + 1_000);
      assert.equal(await tokens.tokenFor(id), undefined);
      assert.equal(await tokens.has(id), false);
    },
    'tokens are per upload': async (make) => {
      const tokens = make();
      const [a, b] = [uid('a'), uid('b')];
      await tokens.remember(a, 'token-a');
      await tokens.remember(b, 'token-b');
      await tokens.forget(a);
      assert.equal(await tokens.tokenFor(a), undefined);
      assert.equal(await tokens.tokenFor(b), 'token-b');
    },
  },

  forget: {
    'forget without a token drops whatever is held; forgetting nothing is a no-op': async (make) => {
      const tokens = make();
      const id = uid('upload');
      await tokens.remember(id, 'token-1');
      await tokens.forget(id);
      assert.equal(await tokens.tokenFor(id), undefined);
      await tokens.forget(id);
      await tokens.forget(uid('unknown'), 'token-x');
    },
    'forget with a token drops only that one: a newer token stays': async (make) => {
      const tokens = make();
      const id = uid('upload');
      await tokens.remember(id, 'refused');
      await tokens.remember(id, 'fresh');
      await tokens.forget(id, 'refused');
      assert.equal(await tokens.tokenFor(id), 'fresh');
      await tokens.forget(id, 'fresh');
      assert.equal(await tokens.tokenFor(id), undefined);
    },
  },
};
