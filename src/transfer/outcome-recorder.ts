import type { GlanceClient } from '../glance/client.js';
import type { GlanceAuth } from '../glance/image.js';
import type { Logger } from '../logger.js';
import type { RecordPatch } from '../state/state-store.js';
import type { TokenSource } from '../state/token-source.js';
import { movedOn } from '../state/transitions.js';
import type { UploadRecord } from '../state/upload-record.js';
import type { Digests } from './digests.js';
import { judgeImage } from './image-verdict.js';
import { classifyFailure, type FinalOutcome, type PushOutcome, type RetryPolicy, type Settlement, settle, verdictOutcome } from './push-outcome.js';
import type { StoredFiles } from './stored-files.js';

export interface OutcomeDeps {
  tokens: TokenSource;
  glance: GlanceClient;
  digests: Digests;
  files: Pick<StoredFiles, 'release'>;
  /** Glance holds the upload: what it held here may be given back, before anyone sees it `active`. */
  delivered(uploadId: string): void;
  /** The push's own move out of `pushing` or `verifying`, as the lease holder. */
  move(uploadId: string, to: Settlement['to'], patch: RecordPatch): Promise<unknown>;
  /** Run the upload's push again after `delayMs`. */
  requeue(uploadId: string, delayMs: number): Promise<void>;
  /** The push ended for good (`active`, or `failed` until someone starts it again). */
  ended(uploadId: string): Promise<void>;
  /** The outcome could not be recorded: the next run starts the push again from where it stands. */
  unrecorded(uploadId: string): void;
}

/** Applies a push attempt's outcome: asks Glance again where the outcome says so, then records it through the state table. */
export class OutcomeRecorder {
  constructor(
    private readonly deps: OutcomeDeps,
    private readonly policy: RetryPolicy,
  ) {}

  /** Apply an attempt's outcome; one that cannot be recorded (a full disk, say) is tried again later rather than stall. */
  async conclude(record: UploadRecord, outcome: PushOutcome, auth: GlanceAuth, log: Logger): Promise<void> {
    await this.#apply(record, outcome, auth, log).catch((failed: unknown) => {
      if (movedOn(failed, log)) return;
      log.error({ err: failed }, 'push outcome not recorded; retrying later');
      this.deps.unrecorded(record.id);
      return this.deps.requeue(record.id, this.policy.retryMaxMs);
    });
  }

  async #apply(record: UploadRecord, outcome: PushOutcome, auth: GlanceAuth, log: Logger, looked = false): Promise<void> {
    switch (outcome.kind) {
      case 'aborted':
        return log.info('push aborted; its state is kept for the next start');
      case 'moved_on':
        return log.debug('upload moved on meanwhile; this push stops');
      case 'look_again': {
        // Whether a 409 is success, a wait or a failure depends on the image now; asked once per attempt.
        const next: PushOutcome = looked ? { kind: 'retry', error: { code: 'image_busy', message: 'Glance refused the push again' } } : await this.#look(record, auth, log);
        return this.#apply(record, next, auth, log, true);
      }
      case 'token_rejected': {
        await this.deps.tokens.forget(record.id, auth.token);
        const fresher = await this.deps.tokens.has(record.id);
        log.warn(fresher ? 'Glance refused the token; the push goes on with another' : 'Glance refused the token; waiting for a fresh one');
        return this.#record(record, fresher ? { kind: 'retry', error: outcome.error } : { kind: 'await_token', error: outcome.error }, log);
      }
      default:
        return this.#record(record, outcome, log);
    }
  }

  async #look(record: UploadRecord, auth: GlanceAuth, log: Logger): Promise<PushOutcome> {
    try {
      const image = await this.deps.glance.getImage(auth, record.imageId);
      return verdictOutcome(await judgeImage(image, record.size, (algo) => this.deps.digests.of(record, algo, log)), image);
    } catch (err) {
      return classifyFailure(err);
    }
  }

  async #record(record: UploadRecord, outcome: FinalOutcome, log: Logger): Promise<void> {
    const { to, patch, retryInMs } = settle(outcome, record, this.policy);
    if (to === 'failed') log.error({ error: patch.error }, 'push failed');
    if (to === 'retrying') log.warn({ error: patch.error, delay: retryInMs }, 'push will be retried');
    if (to === 'active') this.deps.delivered(record.id);
    await this.deps.move(record.id, to, patch);
    if (retryInMs !== undefined) await this.deps.requeue(record.id, retryInMs);
    if (to === 'failed') this.deps.digests.drop(record.id); // a restart hashes again: the bytes may have been replaced by then
    if (to === 'failed' || to === 'active') await this.deps.ended(record.id);
    if (outcome.kind !== 'active') return;
    log.info('image active');
    this.deps.digests.learn(record.glanceUrl, outcome.image.os_hash_algo);
    await this.deps.tokens.forget(record.id);
    this.deps.digests.drop(record.id);
    await this.deps.files.release(record.id).catch((err: unknown) => log.warn({ err }, 'could not free the pushed data'));
  }
}
