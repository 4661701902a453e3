import { NotFoundError, PushNotRestartableError } from '../errors.js';
import type { GlanceClient } from '../glance/client.js';
import { GlanceNetworkError } from '../glance/errors.js';
import type { GlanceAuth } from '../glance/image.js';
import type { Logger } from '../logger.js';
import { LeaseKeeper, newInstanceId } from '../state/lease.js';
import type { RecordPatch, UploadStateStore } from '../state/state-store.js';
import type { TokenSource } from '../state/token-source.js';
import { LEASED_STATES, movedOn, unlessMovedOn, type StateConflictError } from '../state/transitions.js';
import type { UploadEvents } from '../state/upload-events.js';
import type { UploadRecord, UploadState } from '../state/upload-record.js';
import { Digests } from './digests.js';
import { OutcomeRecorder } from './outcome-recorder.js';
import { PushRecovery } from './push-recovery.js';
import { type Attempt, type AttemptDeps, pushAttempt } from './push-attempt.js';
import type { RetryPolicy } from './push-outcome.js';
import { LocalPushQueue, type PushQueue, type PushWorker } from './push-queue.js';
import { PushProgress } from './push-progress.js';
import type { StoredFiles } from './stored-files.js';
import { StreamingPush } from './streaming-push.js';

export interface PushPolicy extends RetryPolicy {
  concurrency: number;
  /** Push while the upload still arrives; give that up when the client stalls this long, or sends below `minRate` (bytes/s) over it. */
  streaming: { enabled: boolean; stallMs: number; minRate: number };
}

export interface PusherDeps {
  store: UploadStateStore;
  tokens: TokenSource;
  glance: GlanceClient;
  files: StoredFiles;
  events: UploadEvents;
  logger: Logger;
  /**
   * Judge the complete stored upload against another disk_format than the one it was checked
   * against at upload; the reason it does not match, or null.
   */
  recheck(uploadId: string, diskFormat: string, size: number): Promise<string | null>;
  /** Glance holds the upload: what it held here may be given back, before anyone sees it `active`. */
  delivered(uploadId: string): void;
  /** The push ended for good (`active`, or `failed` until someone starts it again). */
  ended(uploadId: string): Promise<void>;
  /** Defaults to a LocalPushQueue of `policy.concurrency` slots. */
  queue?: (worker: PushWorker) => PushQueue;
  /** This process as the owner of push leases; random when not given. */
  instanceId?: string;
}

const RESTARTABLE: readonly UploadState[] = ['failed', 'retrying', 'awaiting_token'];

/**
 * Schedules pushes of complete (or, streaming, arriving) uploads into Glance: runs one attempt
 * per queue slot and applies its outcome through the state table; retries are delayed queue
 * entries. What an attempt does, and what its outcome means, live beside it as plain functions.
 */
export class Pusher {
  readonly #queue: PushQueue;
  readonly #leases: LeaseKeeper;
  readonly #digests: Digests;
  readonly #attemptDeps: AttemptDeps;
  readonly #outcomes: OutcomeRecorder;
  /** Pushes nobody runs any more: at a start, and a stopped instance's. */
  readonly recovery: PushRecovery;
  readonly #inflight = new Map<string, { abort(): void }>();
  /** Pushes whose outcome could not be recorded: their next run starts them again. */
  readonly #stuck = new Set<string>();
  readonly #progress: PushProgress;
  /** Streaming pushes under way; `released` once the upload is complete and checked. */
  readonly #streaming = new Map<string, StreamingPush>();
  /** Uploads whose streaming push was given up: they push once complete. */
  readonly #noStream = new Set<string>();

  constructor(
    private readonly deps: PusherDeps,
    private readonly policy: PushPolicy,
  ) {
    const worker = (id: string, lost: AbortSignal) => this.#run(id, lost);
    this.#queue = deps.queue ? deps.queue(worker) : new LocalPushQueue(policy.concurrency, worker);
    this.#leases = new LeaseKeeper(deps.store, deps.instanceId ?? newInstanceId(), deps.logger);
    this.#digests = new Digests(deps.files, deps.store);
    this.#progress = new PushProgress(deps.events);
    const requeue = (id: string, delayMs?: number) => this.#queue.add(id, { delayMs });
    const outcomeDeps = { ...deps, digests: this.#digests, requeue, unrecorded: (id: string) => this.#stuck.add(id) };
    this.#outcomes = new OutcomeRecorder({ ...outcomeDeps, move: (id, to, patch) => this.#move(id, LEASED_STATES, to, patch) }, policy);
    this.recovery = new PushRecovery({
      store: deps.store,
      tokens: deps.tokens,
      logger: deps.logger,
      owner: this.#leases.owner,
      running: (id) => this.#inflight.has(id),
      move: (id, from, to, patch) => this.#move(id, from, to, patch),
      queue: requeue,
      resume: (id) => this.tokenArrived(id),
    });
    this.#attemptDeps = { glance: deps.glance, digests: this.#digests, store: deps.store, recheck: deps.recheck };
  }

  queueDepth(): Promise<number> {
    return this.#queue.depth();
  }

  /** Bytes sent in the running attempt, if one runs. */
  livePushed(uploadId: string): number | undefined {
    return this.#progress.live(uploadId);
  }

  /** The upload is complete: queue its push, or let a streaming one finish. Idempotent; returns the state now. */
  async submit(uploadId: string): Promise<UploadState> {
    const record = await this.#get(uploadId);
    if (record.state !== 'receiving') return record.state;
    const stream = this.#streaming.get(uploadId);
    try {
      if (!stream) return await this.#enqueue(uploadId, 'receiving', { attempts: 0 });
      await this.#move(uploadId, 'receiving', 'pushing', { attempts: record.attempts + 1 });
    } catch (err) {
      if (!movedOn(err, this.deps.logger.child({ uploadId }))) throw err;
      return (err as StateConflictError).actual;
    }
    this.#leases.keep(uploadId, () => stream.abort());
    void this.#releaseLastByte(record, stream);
    return 'pushing';
  }

  /** Bytes past the content check are arriving: start pushing them now if a slot is free. */
  async received(uploadId: string): Promise<void> {
    if (!this.policy.streaming.enabled || this.#noStream.has(uploadId) || this.#streaming.has(uploadId)) return;
    if (this.#inflight.has(uploadId) || !(await this.deps.tokens.has(uploadId))) return;
    await this.#queue.add(uploadId);
  }

  /** A request with a token that Glance accepted reached this upload. */
  async tokenArrived(uploadId: string): Promise<void> {
    await this.#enqueue(uploadId, 'awaiting_token', { attempts: 0 }).catch(unlessMovedOn(this.deps.logger.child({ uploadId })));
  }

  /** `POST /files/{id}/push`: start a stopped push again, with a fresh retry budget. A running one is left running. */
  async restart(uploadId: string): Promise<UploadRecord> {
    const record = await this.#get(uploadId);
    if (record.state === 'receiving' || record.state === 'active') {
      const why = record.state === 'receiving' ? 'the upload is not complete' : 'the image is already active';
      throw new PushNotRestartableError(`nothing to push: ${why}`);
    }
    if (!RESTARTABLE.includes(record.state)) return record; // queued or running
    await this.#enqueue(uploadId, RESTARTABLE, { attempts: 0, error: null }).catch(unlessMovedOn(this.deps.logger.child({ uploadId })));
    return this.#get(uploadId);
  }

  /** The upload is being removed: stop everything about it. */
  async cancel(uploadId: string): Promise<void> {
    this.#noStream.delete(uploadId);
    this.#stuck.delete(uploadId);
    this.#digests.drop(uploadId);
    this.#inflight.get(uploadId)?.abort();
    await this.#queue.remove(uploadId);
  }

  /** Shutdown: abort running pushes and leave their state for the next start. */
  async close(): Promise<void> {
    const closing = this.#queue.close();
    this.#leases.close();
    for (const controller of this.#inflight.values()) controller.abort();
    this.#digests.close();
    await closing;
  }

  async #enqueue(uploadId: string, from: UploadState | readonly UploadState[], patch: RecordPatch): Promise<UploadState> {
    const to = (await this.deps.tokens.has(uploadId)) ? 'queued' : 'awaiting_token';
    await this.#move(uploadId, from, to, { ...patch, nextAttemptAt: null });
    if (to === 'queued') await this.#queue.add(uploadId);
    return to;
  }

  /** Every state change of a push, as this instance: the store checks `from` and the lease. */
  #move(uploadId: string, from: UploadState | readonly UploadState[], to: UploadState, patch: RecordPatch): Promise<UploadRecord> {
    return this.deps.store.transition(uploadId, { from, to, patch, owner: this.#leases.owner });
  }

  /**
   * The queue's worker: a streaming push while the upload arrives, else a first push, a due
   * retry, or a push whose instance stopped renewing its lease (it died): taken over here.
   */
  async #run(uploadId: string, lost: AbortSignal): Promise<void> {
    let current = await this.deps.store.get(uploadId);
    if (current?.state === 'receiving') return this.#stream(current, lost);
    if (current && LEASED_STATES.includes(current.state) && !this.#inflight.has(uploadId)) current = await this.recovery.takeOver(current);
    // A push whose outcome could not be recorded runs again from wherever it stopped.
    if (!current || !(this.#stuck.delete(uploadId) || ['queued', 'retrying'].includes(current.state))) return;
    const log = this.deps.logger.child({ uploadId, imageId: current.imageId, attempt: current.attempts + 1 });
    let token: string | undefined;
    let record: UploadRecord;
    try {
      token = await this.deps.tokens.tokenFor(uploadId);
      if (!token) return void (await this.#move(uploadId, current.state, 'awaiting_token', { nextAttemptAt: null }));
      if (current.state !== 'queued') await this.#move(uploadId, current.state, 'queued', { nextAttemptAt: null });
      record = await this.#move(uploadId, 'queued', 'pushing', { attempts: current.attempts + 1, pushed: 0 });
    } catch (err) {
      if (movedOn(err, log)) return;
      // A token that Keystone could not give now (its trust) is asked for again soon; anything else later.
      const delayMs = err instanceof GlanceNetworkError ? this.policy.retryBaseMs : this.policy.retryMaxMs;
      log.error({ err }, 'push not started; trying again later');
      return this.#queue.add(uploadId, { delayMs });
    }
    const auth = { endpoint: record.glanceUrl, token };
    const controller = new AbortController();
    lost.addEventListener('abort', () => controller.abort(), { once: true });
    this.#inflight.set(uploadId, controller);
    this.#leases.keep(uploadId, () => controller.abort());
    try {
      const outcome = await pushAttempt(this.#attemptDeps, this.#attempt(record, auth, controller.signal, log, () => this.deps.files.read(uploadId)));
      await this.#outcomes.conclude(record, outcome, auth, log);
    } finally {
      this.#leases.stop(uploadId);
      this.#inflight.delete(uploadId);
      this.#progress.ended(uploadId);
    }
  }

  #attempt(record: UploadRecord, auth: GlanceAuth, signal: AbortSignal, log: Logger, openBody: Attempt['openBody']): Attempt {
    return {
      record,
      auth,
      signal,
      log,
      openBody,
      progress: (bytes) => this.#progress.report(record.id, bytes),
      delivered: (pushed) => this.#move(record.id, 'pushing', 'verifying', { pushed }),
    };
  }

  /** While the upload arrives: push the bytes past the content check, following the file. */
  async #stream(record: UploadRecord, lost: AbortSignal): Promise<void> {
    const token = await this.deps.tokens.tokenFor(record.id).catch(() => undefined);
    if (!this.policy.streaming.enabled || this.#noStream.has(record.id) || !token) return;
    const { stallMs, minRate } = this.policy.streaming;
    const stream = new StreamingPush(this.deps.files, record, { stallMs, minRate });
    lost.addEventListener('abort', () => stream.abort(), { once: true });
    // Completed through another instance (now, or before this stream was known): that one queues the stored push.
    const elsewhere = (now: UploadRecord | undefined) => now?.state !== 'receiving' && now?.lease?.owner !== this.#leases.owner;
    const unsubscribe = this.deps.events.subscribe(record.id, (event) => {
      if (event.kind === 'state' && elsewhere(event.record)) stream.abort();
    });
    this.#inflight.set(record.id, stream);
    this.#streaming.set(record.id, stream);
    if (elsewhere(await this.deps.store.get(record.id).catch(() => record))) stream.abort();
    const log = this.deps.logger.child({ uploadId: record.id, imageId: record.imageId, streaming: true });
    const auth = { endpoint: record.glanceUrl, token };
    try {
      const attempt = this.#attempt(record, auth, stream.signal, log, () => stream.reader);
      const outcome = await pushAttempt(this.#attemptDeps, { ...attempt, streaming: { stallMs, minRate } });
      this.#streaming.delete(record.id); // from here on a completion queues a stored push
      if (outcome.kind === 'aborted') return;
      // Completed meanwhile: this attempt was the upload's push, and its outcome counts.
      const current = await this.deps.store.get(record.id);
      if (current && LEASED_STATES.includes(current.state)) return await this.#outcomes.conclude(current, outcome, auth, log);
      this.#noStream.add(record.id);
      const reason = stream.reader.stalled ?? ('error' in outcome ? outcome.error.message : 'the image is not queued as checked');
      log.warn({ reason }, 'streaming push given up; the upload will be pushed once complete');
    } finally {
      this.#leases.stop(record.id);
      this.#streaming.delete(record.id);
      this.#inflight.delete(record.id);
      this.#progress.ended(record.id);
      unsubscribe();
      stream.end();
    }
  }

  /**
   * The last byte goes only to a stream still running, for an image whose disk_format is still the one the content was
   * checked against; otherwise (or if that cannot be told) the streaming push stops and a stored push decides.
   */
  async #releaseLastByte(record: UploadRecord, stream: StreamingPush): Promise<void> {
    const token = await this.deps.tokens.tokenFor(record.id).catch(() => undefined);
    const image = token
      ? await this.deps.glance.getImage({ endpoint: record.glanceUrl, token }, record.imageId, stream.signal).catch(() => undefined)
      : undefined;
    if (image && (image.disk_format ?? record.diskFormat) === record.diskFormat && this.#streaming.get(record.id) === stream) {
      stream.released = true;
      return;
    }
    stream.abort();
    await stream.done;
    const log = this.deps.logger.child({ uploadId: record.id });
    await this.#enqueue(record.id, 'pushing', {}).catch((err: unknown) => {
      if (!movedOn(err, log)) log.error({ err }, 'push after a stopped streaming push could not be queued');
    });
  }

  async #get(uploadId: string): Promise<UploadRecord> {
    const record = await this.deps.store.get(uploadId);
    if (!record) throw new NotFoundError(`upload ${uploadId} not found`);
    return record;
  }
}
