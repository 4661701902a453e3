import { NotFoundError, StateUnavailableError } from '../errors.js';
import { GlanceHttpError, GlanceNetworkError } from '../glance/errors.js';
import type { Image } from '../glance/image.js';
import type { RecordPatch } from '../state/state-store.js';
import { StateConflictError } from '../state/transitions.js';
import type { GlanceSnapshot, PushError, UploadRecord, UploadState } from '../state/upload-record.js';
import { backoffDelay } from './backoff.js';
import type { ImageVerdict } from './image-verdict.js';

/** How a push attempt ended, before anything is recorded. Pure data: the scheduler applies it. */
export type PushOutcome =
  | { kind: 'active'; image: Image } // Glance holds exactly our bytes
  | { kind: 'retry'; error: PushError } // worth another attempt after a backoff
  | { kind: 'fail'; error: PushError; glance?: GlanceSnapshot } // no attempt will do better
  | { kind: 'token_rejected'; error: PushError } // Glance said 401: the token in hand is dead
  | { kind: 'look_again' } // Glance said 409, or a streaming push found the image not queued: the image now decides
  | { kind: 'aborted' } // this instance stopped the push (shutdown, lease lost, cancel)
  | { kind: 'moved_on' }; // the record moved on meanwhile (removed, taken over): nothing to record

export interface RetryPolicy {
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

/** An error thrown by a push attempt, as an outcome. */
export function classifyFailure(err: unknown): PushOutcome {
  if (err instanceof StateConflictError || err instanceof NotFoundError) return { kind: 'moved_on' };
  // The shared state could not record a step: the push is retried, never failed for it.
  if (err instanceof StateUnavailableError) return { kind: 'retry', error: { code: 'state_unavailable', message: err.message } };
  if (err instanceof GlanceHttpError) {
    const error: PushError = { code: 'glance_refused', message: err.message, httpStatus: err.status };
    if (err.status === 401) return { kind: 'token_rejected', error: { ...error, code: 'token_rejected' } };
    if (err.status === 409) return { kind: 'look_again' };
    if (err.status >= 500) return { kind: 'retry', error: { ...error, code: 'glance_error' } };
    return { kind: 'fail', error };
  }
  if (err instanceof GlanceNetworkError) return { kind: 'retry', error: { code: 'glance_unreachable', message: err.message } };
  return { kind: 'fail', error: { code: 'internal', message: err instanceof Error ? err.message : String(err) } };
}

/** What Glance's image, judged before sending, means for a push that will not send now. */
export function verdictOutcome(verdict: ImageVerdict, image: Image): PushOutcome {
  switch (verdict.kind) {
    case 'done':
      return { kind: 'active', image };
    case 'wait':
      return { kind: 'retry', error: { code: 'image_busy', message: verdict.why } };
    case 'push': // asked after a 409: the image went back to queued meanwhile
      return { kind: 'retry', error: { code: 'image_reset', message: 'image went back to queued' } };
    case 'fail':
      return { kind: 'fail', error: { code: verdict.code, message: verdict.message }, glance: snapshot(image) };
  }
}

/** The record's move for an outcome that ends an attempt. */
export interface Settlement {
  to: Extract<UploadState, 'active' | 'retrying' | 'failed' | 'awaiting_token'>;
  patch: RecordPatch;
  /** For `retrying`: when the queue should run it again. */
  retryInMs?: number;
}

export type FinalOutcome = Extract<PushOutcome, { kind: 'active' | 'retry' | 'fail' }> | { kind: 'await_token'; error: PushError };

/** Where an attempt's outcome takes the record: retries within the budget, with jittered backoff. */
export function settle(
  outcome: FinalOutcome,
  record: Pick<UploadRecord, 'attempts' | 'size'>,
  policy: RetryPolicy,
  now = Date.now(),
  random: () => number = Math.random,
): Settlement {
  switch (outcome.kind) {
    case 'active':
      return { to: 'active', patch: { pushed: record.size, glance: snapshot(outcome.image), error: null, nextAttemptAt: null } };
    case 'await_token':
      return { to: 'awaiting_token', patch: { error: outcome.error, nextAttemptAt: null } };
    case 'fail':
      return { to: 'failed', patch: { error: outcome.error, nextAttemptAt: null, ...(outcome.glance ? { glance: outcome.glance } : {}) } };
    case 'retry': {
      if (record.attempts >= policy.maxAttempts) {
        const error = { ...outcome.error, message: `gave up after ${record.attempts} attempts: ${outcome.error.message}` };
        return { to: 'failed', patch: { error, nextAttemptAt: null } };
      }
      const delay = backoffDelay(record.attempts, policy.retryBaseMs, policy.retryMaxMs, random);
      return { to: 'retrying', patch: { error: outcome.error, nextAttemptAt: new Date(now + delay).toISOString() }, retryInMs: delay };
    }
  }
}

/** What the status object keeps of Glance's image. */
export function snapshot(image: Image): GlanceSnapshot {
  const { status, size, checksum, os_hash_algo, os_hash_value } = image;
  return { status, size, checksum, os_hash_algo, os_hash_value };
}
