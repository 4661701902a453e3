import { pipeline, type Readable } from 'node:stream';
import type { GlanceClient } from '../glance/client.js';
import type { GlanceAuth, Image } from '../glance/image.js';
import type { Logger } from '../logger.js';
import type { UploadStateStore } from '../state/state-store.js';
import type { PushError, UploadRecord } from '../state/upload-record.js';
import type { Digests } from './digests.js';
import { ByteCounter } from './hashing.js';
import { holdsOurBytes, judgeImage } from './image-verdict.js';
import { classifyFailure, type PushOutcome, snapshot, verdictOutcome } from './push-outcome.js';

export interface AttemptDeps {
  glance: GlanceClient;
  digests: Digests;
  store: Pick<UploadStateStore, 'update'>;
  /** The complete stored upload judged as another disk_format; why it does not match, or null. */
  recheck(uploadId: string, diskFormat: string, size: number): Promise<string | null>;
}

export interface Attempt {
  record: UploadRecord;
  auth: GlanceAuth;
  signal: AbortSignal;
  log: Logger;
  /** The bytes to send: the stored file, or a reader following the upload while it arrives. */
  openBody(): Readable;
  /**
   * Set while the upload still arrives: the image must be queued with the disk_format the content
   * was checked against, and the digest follows the growing file within these limits.
   */
  streaming?: { stallMs: number; minRate: number };
  progress(bytes: number): void;
  /** Glance took the data: record that (`pushing` → `verifying`) and give back the record as it is now. */
  delivered(pushed: number): Promise<UploadRecord>;
}

/**
 * One push, for the stored and the streaming path alike: look at the image, send the bytes with
 * the digest beside them, then verify that Glance holds exactly those bytes. Records nothing but
 * the move to `verifying`; the outcome says what should happen next.
 */
export async function pushAttempt(deps: AttemptDeps, attempt: Attempt): Promise<PushOutcome> {
  try {
    return await attemptOnce(deps, attempt);
  } catch (err) {
    if (attempt.signal.aborted) return { kind: 'aborted' };
    const outcome = classifyFailure(err);
    if (outcome.kind === 'fail' && outcome.error.code === 'internal') attempt.log.error({ err }, 'push failed unexpectedly');
    return outcome;
  }
}

async function attemptOnce(deps: AttemptDeps, attempt: Attempt): Promise<PushOutcome> {
  const { record, auth, signal, log, streaming } = attempt;
  // Look before sending: after a crash or a 5xx the image may be saving, or already hold our bytes.
  const before = await deps.glance.getImage(auth, record.imageId, signal);
  if (streaming) {
    // Anything but a queued image of the checked format is for the push after completion to judge.
    if (before.status !== 'queued' || (before.disk_format ?? record.diskFormat) !== record.diskFormat) return { kind: 'look_again' };
  } else {
    const verdict = await judgeImage(before, record.size, (algo) => deps.digests.of(record, algo, log));
    if (verdict.kind !== 'push') return verdictOutcome(verdict, before);
    const changed = await formatChange(deps, record, before);
    if (changed) return { kind: 'fail', error: changed, glance: snapshot(before) };
  }

  log.info(streaming ? 'streaming push started' : 'push started');
  deps.digests.start(record, deps.digests.algoFor(record.glanceUrl), streaming);
  const counter = new ByteCounter(attempt.progress);
  const body = pipeline(attempt.openBody(), counter, () => undefined);
  await deps.glance.uploadData(auth, record.imageId, body, record.size, signal);
  log.debug({ pushed: counter.bytes }, 'Glance took the data');

  const verifying = await attempt.delivered(counter.bytes);
  const after = await deps.glance.getImage(auth, record.imageId, signal);
  const mismatch =
    after.status === 'active'
      ? await holdsOurBytes(after, record.size, (algo) => deps.digests.of(verifying, algo, log))
      : `image is ${after.status}, not active`;
  if (mismatch !== null) return { kind: 'fail', error: { code: 'verification_failed', message: mismatch }, glance: snapshot(after) };
  // Switched in the moment between the last look and the PUT: Glance holds bytes never checked as that.
  if (after.disk_format && after.disk_format !== verifying.diskFormat) {
    const message = `disk_format changed in Glance from ${verifying.diskFormat} to ${after.disk_format} during the push`;
    return { kind: 'fail', error: { code: 'format_changed', message }, glance: snapshot(after) };
  }
  return { kind: 'active', image: after };
}

/** Glance's image may have been switched to another disk_format since the content was checked: check again. */
async function formatChange(deps: AttemptDeps, record: UploadRecord, image: Image): Promise<PushError | null> {
  const now = image.disk_format;
  if (!now || now === record.diskFormat) return null;
  const refusal = await deps.recheck(record.id, now, record.size);
  if (refusal !== null) {
    const message = `disk_format changed in Glance from ${record.diskFormat} to ${now}, which the content does not match: ${refusal}`;
    return { code: 'format_changed', message };
  }
  await deps.store.update(record.id, { diskFormat: now });
  return null;
}
