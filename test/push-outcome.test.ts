// The pure core of the push: what a failure means, what an image seen before sending means, and
// where each outcome takes the record. No Glance, no store, no timers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NotFoundError } from '../src/errors.js';
import { GlanceHttpError, GlanceNetworkError } from '../src/glance/errors.js';
import type { Image } from '../src/glance/image.js';
import { StateConflictError } from '../src/state/transitions.js';
import { judgeImage } from '../src/transfer/image-verdict.js';
import { classifyFailure, settle, verdictOutcome } from '../src/transfer/push-outcome.js';

const policy = { maxAttempts: 3, retryBaseMs: 1_000, retryMaxMs: 8_000 };
const image = (fields: Partial<Image>): Image => ({ id: 'img', status: 'queued', ...fields }) as Image;

describe('classifyFailure', () => {
  test('Glance 401 is a dead token, 409 asks the image, 5xx retries, another 4xx fails', () => {
    assert.deepEqual(classifyFailure(new GlanceHttpError(401, 'no')), {
      kind: 'token_rejected',
      error: { code: 'token_rejected', message: 'no', httpStatus: 401 },
    });
    assert.deepEqual(classifyFailure(new GlanceHttpError(409, 'busy')), { kind: 'look_again' });
    assert.deepEqual(classifyFailure(new GlanceHttpError(503, 'down')), {
      kind: 'retry',
      error: { code: 'glance_error', message: 'down', httpStatus: 503 },
    });
    assert.deepEqual(classifyFailure(new GlanceHttpError(413, 'quota')), {
      kind: 'fail',
      error: { code: 'glance_refused', message: 'quota', httpStatus: 413 },
    });
  });

  test('an unreachable Glance retries; an unknown error fails as internal', () => {
    assert.deepEqual(classifyFailure(new GlanceNetworkError('reset')), {
      kind: 'retry',
      error: { code: 'glance_unreachable', message: 'reset' },
    });
    assert.deepEqual(classifyFailure(new TypeError('bug')), { kind: 'fail', error: { code: 'internal', message: 'bug' } });
    assert.deepEqual(classifyFailure('odd'), { kind: 'fail', error: { code: 'internal', message: 'odd' } });
  });

  test('a record that moved on or is gone ends the attempt without recording anything', () => {
    assert.deepEqual(classifyFailure(new StateConflictError('u', 'failed')), { kind: 'moved_on' });
    assert.deepEqual(classifyFailure(new NotFoundError('gone')), { kind: 'moved_on' });
  });
});

describe('verdictOutcome', () => {
  const noHash = async () => assert.fail('no digest needed');

  test('a saving image is waited for, a killed one fails with what Glance showed', async () => {
    const saving = image({ status: 'saving' });
    assert.deepEqual(verdictOutcome(await judgeImage(saving, 10, noHash), saving), {
      kind: 'retry',
      error: { code: 'image_busy', message: 'image is saving' },
    });
    const killed = image({ status: 'killed', size: null });
    const outcome = verdictOutcome(await judgeImage(killed, 10, noHash), killed);
    assert.equal(outcome.kind, 'fail');
    assert.equal(outcome.kind === 'fail' && outcome.error.code, 'image_unusable');
    assert.equal(outcome.kind === 'fail' && outcome.glance?.status, 'killed');
  });

  test('an active image with our bytes is done; asked after a 409, a queued image is a reset', async () => {
    const active = image({ status: 'active', size: 10, os_hash_algo: 'sha512', os_hash_value: 'ab' });
    const ours = async () => ({ algo: 'sha512', value: 'ab' });
    assert.deepEqual(verdictOutcome(await judgeImage(active, 10, ours), active), { kind: 'active', image: active });
    const queued = image({ status: 'queued' });
    assert.equal(verdictOutcome(await judgeImage(queued, 10, noHash), queued).kind, 'retry');
  });
});

describe('settle', () => {
  const record = { attempts: 1, size: 42 };
  const error = { code: 'glance_error' as const, message: 'down' };

  test('a retry within the budget waits a jittered backoff, recorded as the next attempt time', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const low = settle({ kind: 'retry', error }, record, policy, now, () => 0);
    assert.deepEqual(low, { to: 'retrying', patch: { error, nextAttemptAt: '2026-01-01T00:00:00.500Z' }, retryInMs: 500 });
    const high = settle({ kind: 'retry', error }, { ...record, attempts: 2 }, policy, now, () => 1);
    assert.equal(high.retryInMs, 2_000);
  });

  test('a retry past the budget fails, saying how many attempts were made', () => {
    const gaveUp = settle({ kind: 'retry', error }, { ...record, attempts: 3 }, policy);
    assert.equal(gaveUp.to, 'failed');
    assert.equal(gaveUp.retryInMs, undefined);
    assert.deepEqual(gaveUp.patch.error, { code: 'glance_error', message: 'gave up after 3 attempts: down' });
  });

  test('active records the whole size and what Glance holds; a token wait clears the next attempt', () => {
    const active = image({ status: 'active', size: 42, os_hash_algo: 'sha512', os_hash_value: 'ab', checksum: 'c' });
    assert.deepEqual(settle({ kind: 'active', image: active }, record, policy), {
      to: 'active',
      patch: {
        pushed: 42,
        glance: { status: 'active', size: 42, checksum: 'c', os_hash_algo: 'sha512', os_hash_value: 'ab' },
        error: null,
        nextAttemptAt: null,
      },
    });
    const tokenError = { code: 'token_rejected' as const, message: 'no' };
    assert.deepEqual(settle({ kind: 'await_token', error: tokenError }, record, policy), {
      to: 'awaiting_token',
      patch: { error: tokenError, nextAttemptAt: null },
    });
  });

  test('a failure keeps the image snapshot only when there is one', () => {
    assert.deepEqual(settle({ kind: 'fail', error }, record, policy).patch, { error, nextAttemptAt: null });
    const glance = { status: 'killed', size: null, checksum: null, os_hash_algo: null, os_hash_value: null };
    assert.deepEqual(settle({ kind: 'fail', error, glance }, record, policy).patch, { error, nextAttemptAt: null, glance });
  });
});
