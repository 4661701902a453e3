import { pipeline } from 'node:stream';
import { NotFoundError, PushNotRestartableError } from '../errors.js';
import type { GlanceClient } from '../glance/client.js';
import { GlanceHttpError, GlanceNetworkError } from '../glance/errors.js';
import type { GlanceAuth, Image } from '../glance/image.js';
import type { Logger } from '../logger.js';
import { LeaseKeeper, newInstanceId } from '../state/lease.js';
import type { RecordPatch, UploadStateStore } from '../state/state-store.js';
import type { TokenSource } from '../state/token-source.js';
import { LEASED_STATES, movedOn, unlessMovedOn, type StateConflictError } from '../state/transitions.js';
import type { UploadEvents } from '../state/upload-events.js';
import {
  UNFINISHED_PUSH_STATES,
  type ContentHash,
  type GlanceSnapshot,
  type PushError,
  type UploadRecord,
  type UploadState,
} from '../state/upload-record.js';
import { backoffDelay } from './backoff.js';
import { ByteCounter, DEFAULT_ALGO, hashStored, type Hashing } from './hashing.js';
import { holdsOurBytes, judgeImage, type ImageVerdict } from './image-verdict.js';
import { LocalPushQueue, type PushQueue, type PushWorker } from './push-queue.js';
import type { StoredFiles } from './stored-files.js';

export interface PushPolicy {
  concurrency: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
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
  /** Defaults to a LocalPushQueue of `policy.concurrency` slots. */
  queue?: (worker: PushWorker) => PushQueue;
  /** This process as the owner of push leases; random when not given. */
  instanceId?: string;
}

const PROGRESS_EVERY_MS = 250;
const RESTARTABLE: readonly UploadState[] = ['failed', 'retrying', 'awaiting_token'];

/**
 * Moves complete uploads into Glance: one attempt per queue slot, Glance's answers
 * mapped to the contract's states, retries as delayed queue entries, verification after the 204.
 */
export class Pusher {
  readonly #queue: PushQueue;
  readonly #leases: LeaseKeeper;
  readonly #inflight = new Map<string, AbortController>();
  /** Pushes whose outcome could not be recorded: their next run starts them again. */
  readonly #stuck = new Set<string>();
  readonly #pushed = new Map<string, { bytes: number; sentAt: number }>();
  /** Streaming pushes under way; `released` once the upload is complete and checked. */
  readonly #streaming = new Map<string, StreamingPush>();
  /** Uploads whose streaming push was given up: they push once complete. */
  readonly #noStream = new Set<string>();
  /** Digests under way, one per upload: each runs beside its push, reading the same file. */
  readonly #hashing = new Map<string, Hashing>();
  /** The multihash algorithm each Glance endpoint was last seen to use (`os_hash_algo`). */
  readonly #algos = new Map<string, string>();

  constructor(
    private readonly deps: PusherDeps,
    private readonly policy: PushPolicy,
  ) {
    const worker = (id: string) => this.#attempt(id);
    this.#queue = deps.queue ? deps.queue(worker) : new LocalPushQueue(policy.concurrency, worker);
    this.#leases = new LeaseKeeper(deps.store, deps.instanceId ?? newInstanceId(), deps.logger);
  }

  queueDepth(): Promise<number> {
    return this.#queue.depth();
  }

  /** Bytes sent in the running attempt, if one runs. */
  livePushed(uploadId: string): number | undefined {
    return this.#pushed.get(uploadId)?.bytes;
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

  /**
   * The last byte goes only to a stream still running, for an image whose disk_format is still the one the content was
   * checked against; otherwise (or if that cannot be told) the streaming push stops and a stored push decides.
   */
  async #releaseLastByte(record: UploadRecord, stream: StreamingPush): Promise<void> {
    const token = await this.deps.tokens.tokenFor(record.id);
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

  /** Glance's image may have been switched to another disk_format since the content was checked: check again. */
  async #formatChange(record: UploadRecord, image: Image): Promise<PushError | null> {
    const now = image.disk_format;
    if (!now || now === record.diskFormat) return null;
    const refusal = await this.deps.recheck(record.id, now, record.size);
    if (refusal !== null) {
      const message = `disk_format changed in Glance from ${record.diskFormat} to ${now}, which the content does not match: ${refusal}`;
      return { code: 'format_changed', message };
    }
    await this.deps.store.update(record.id, { diskFormat: now });
    return null;
  }

  /** Bytes past the content check are arriving: start pushing them now if a slot is free. */
  async received(uploadId: string): Promise<void> {
    if (!this.policy.streaming.enabled || this.#noStream.has(uploadId) || this.#streaming.has(uploadId)) return;
    if (this.#inflight.has(uploadId) || !(await this.deps.tokens.tokenFor(uploadId))) return;
    await this.#queue.add(uploadId);
  }

  /**
   * The digest follows the push, reading the same file: Glance spends about four times as much CPU
   * on the bytes sent, so the digest costs no extra wall time (and none during ingest without streaming).
   */
  #startHashing(record: UploadRecord, algo: string, follow?: { stallMs: number; minRate: number }): Hashing {
    const running = this.#hashing.get(record.id);
    if (running?.algo === algo) return running;
    running?.abort();
    const hashing = hashStored(this.deps.files, record.id, record.size, algo, follow);
    this.#hashing.set(record.id, hashing);
    // One that stopped (the client stalled) is started again by the next push.
    hashing.result.catch(() => this.#hashing.get(record.id) === hashing && this.#hashing.delete(record.id));
    return hashing;
  }

  /** The stored file's digest in `algo`: saved, under way, or computed now. */
  async #hashOf(record: UploadRecord, algo: string, log: Logger): Promise<ContentHash> {
    if (record.hash?.algo === algo) return record.hash;
    const running = this.#hashing.get(record.id);
    if (running && running.algo !== algo) log.info({ algo, was: running.algo }, 'Glance hashes otherwise: digest computed again');
    const hash = await this.#startHashing(record, algo).result;
    log.debug({ algo }, 'digest ready');
    await this.deps.store.update(record.id, { hash });
    return hash;
  }

  /** Glance's `os_hash_algo` as last seen at this endpoint: the digest to compute before it answers. */
  #algoFor(record: UploadRecord): string {
    return this.#algos.get(record.glanceUrl) ?? DEFAULT_ALGO;
  }

  #dropHashing(uploadId: string): void {
    this.#hashing.get(uploadId)?.abort();
    this.#hashing.delete(uploadId);
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
    this.#dropHashing(uploadId);
    this.#inflight.get(uploadId)?.abort();
    await this.#queue.remove(uploadId);
  }

  /** After a start no token is held: every unfinished push waits for its client's next request (unless another instance holds it). */
  async recover(): Promise<void> {
    const from: readonly UploadState[] = UNFINISHED_PUSH_STATES.filter((state) => state !== 'awaiting_token');
    for (const { id, state } of await this.deps.store.list()) {
      if (!from.includes(state)) continue;
      await this.#move(id, from, 'awaiting_token', { nextAttemptAt: null }).catch(unlessMovedOn(this.deps.logger.child({ uploadId: id })));
    }
  }

  /** Shutdown: abort running pushes and leave their state for the next start. */
  async close(): Promise<void> {
    const closing = this.#queue.close();
    this.#leases.close();
    for (const controller of this.#inflight.values()) controller.abort();
    for (const id of this.#hashing.keys()) this.#dropHashing(id);
    await closing;
  }

  async #enqueue(uploadId: string, from: UploadState | readonly UploadState[], patch: RecordPatch): Promise<UploadState> {
    const to = (await this.deps.tokens.tokenFor(uploadId)) ? 'queued' : 'awaiting_token';
    await this.#move(uploadId, from, to, { ...patch, nextAttemptAt: null });
    if (to === 'queued') await this.#queue.add(uploadId);
    return to;
  }

  /** Every state change of a push, as this instance: the store checks `from` and the lease. */
  #move(uploadId: string, from: UploadState | readonly UploadState[], to: UploadState, patch: RecordPatch): Promise<UploadRecord> {
    return this.deps.store.transition(uploadId, { from, to, patch, owner: this.#leases.owner });
  }

  async #attempt(uploadId: string): Promise<void> {
    const current = await this.deps.store.get(uploadId);
    if (current?.state === 'receiving') return this.#stream(current);
    // A first push or a due retry; or a push whose outcome could not be recorded.
    if (!current || !(this.#stuck.delete(uploadId) || ['queued', 'retrying'].includes(current.state))) return;
    const log = this.deps.logger.child({ uploadId, imageId: current.imageId, attempt: current.attempts + 1 });
    const token = await this.deps.tokens.tokenFor(uploadId);
    let record: UploadRecord;
    try {
      if (!token) return void (await this.#move(uploadId, current.state, 'awaiting_token', { nextAttemptAt: null }));
      if (current.state !== 'queued') await this.#move(uploadId, current.state, 'queued', { nextAttemptAt: null });
      record = await this.#move(uploadId, 'queued', 'pushing', { attempts: current.attempts + 1, pushed: 0 });
    } catch (err) {
      if (movedOn(err, log)) return;
      log.error({ err }, 'push not started; trying again later');
      return this.#queue.add(uploadId, { delayMs: this.policy.retryMaxMs });
    }
    const auth = { endpoint: record.glanceUrl, token };
    const controller = new AbortController();
    this.#inflight.set(uploadId, controller);
    this.#leases.keep(uploadId, () => controller.abort());
    try {
      await this.#push(record, auth, controller.signal, log);
    } catch (err) {
      if (controller.signal.aborted) {
        log.info('push aborted; its state is kept for the next start');
        return;
      }
      await this.#onFailure(record, auth, err, log).catch((failed: unknown) => {
        if (movedOn(failed, log)) return;
        // Even the failure could not be recorded (a full disk, say): try again later rather than stall.
        log.error({ err: failed }, 'push outcome not recorded; retrying later');
        this.#stuck.add(uploadId);
        return this.#queue.add(uploadId, { delayMs: this.policy.retryMaxMs });
      });
    } finally {
      this.#leases.stop(uploadId);
      this.#inflight.delete(uploadId);
      this.#pushed.delete(uploadId);
    }
  }

  async #push(record: UploadRecord, auth: GlanceAuth, signal: AbortSignal, log: Logger): Promise<void> {
    // Look before sending: after a crash or a 5xx the image may be saving, or already hold our bytes.
    const before = await this.deps.glance.getImage(auth, record.imageId, signal);
    const verdict = await judgeImage(before, record.size, (algo) => this.#hashOf(record, algo, log));
    if (verdict.kind !== 'push') return this.#settle(record, verdict, before, log);
    const changed = await this.#formatChange(record, before);
    if (changed) return this.#fail(record, changed, log, snapshot(before));

    log.info('push started');
    this.#startHashing(record, this.#algoFor(record));
    const counter = new ByteCounter((bytes) => this.#progress(record.id, bytes));
    const body = pipeline(this.deps.files.read(record.id), counter, () => undefined);
    await this.deps.glance.uploadData(auth, record.imageId, body, record.size, signal);
    await this.#verify(record, auth, counter.bytes, signal, log);
  }

  /** Glance answered 204: the image must now be active with exactly the bytes we hashed on the way. */
  async #verify(record: UploadRecord, auth: GlanceAuth, pushed: number, signal: AbortSignal, log: Logger): Promise<void> {
    log.debug({ pushed }, 'Glance took the data');
    const verifying = await this.#move(record.id, 'pushing', 'verifying', { pushed });
    const after = await this.deps.glance.getImage(auth, record.imageId, signal);
    const mismatch =
      after.status === 'active'
        ? await holdsOurBytes(after, record.size, (algo) => this.#hashOf(verifying, algo, log))
        : `image is ${after.status}, not active`;
    if (mismatch !== null) {
      return this.#fail(record, { code: 'verification_failed', message: mismatch }, log, snapshot(after));
    }
    // Switched in the moment between the last look and the PUT: Glance holds bytes never checked as that.
    if (after.disk_format && after.disk_format !== verifying.diskFormat) {
      const message = `disk_format changed in Glance from ${verifying.diskFormat} to ${after.disk_format} during the push`;
      return this.#fail(record, { code: 'format_changed', message }, log, snapshot(after));
    }
    await this.#activate(record, after, log);
  }

  /**
   * Push while the upload arrives, following the growing file. The last byte is held back until
   * the upload is complete and checked, so Glance cannot finish an image the gateway would refuse.
   */
  async #stream(record: UploadRecord): Promise<void> {
    const token = await this.deps.tokens.tokenFor(record.id);
    if (!this.policy.streaming.enabled || this.#noStream.has(record.id) || !token) return;
    const auth = { endpoint: record.glanceUrl, token };
    const controller = new AbortController();
    let ended!: () => void;
    const stream: StreamingPush = {
      released: false,
      signal: controller.signal,
      abort: () => controller.abort(),
      done: new Promise<void>((resolve) => (ended = resolve)),
    };
    this.#inflight.set(record.id, controller);
    this.#streaming.set(record.id, stream);
    const log = this.deps.logger.child({ uploadId: record.id, imageId: record.imageId, streaming: true });
    const { size } = record;
    const reader = this.deps.files.follow(record.id, {
      size,
      allowed: () => (stream.released ? size : size - 1),
      stallMs: this.policy.streaming.stallMs,
      minRate: this.policy.streaming.minRate,
    });
    try {
      const image = await this.deps.glance.getImage(auth, record.imageId, controller.signal);
      if (image.status !== 'queued') {
        // The push after completion decides; if the completion was already handed to us, we are that push.
        reader.destroy();
        this.#streaming.delete(record.id);
        const current = await this.#get(record.id);
        if (current.state === 'pushing') await this.#lookAgain(current, auth, log);
        return;
      }
      log.info('streaming push started');
      this.#startHashing(record, this.#algoFor(record), this.policy.streaming);
      const counter = new ByteCounter((bytes) => this.#progress(record.id, bytes));
      const body = pipeline(reader, counter, () => undefined);
      await this.deps.glance.uploadData(auth, record.imageId, body, size, controller.signal);
      await this.#verify(await this.#get(record.id), auth, counter.bytes, controller.signal, log);
    } catch (err) {
      reader.destroy();
      this.#streaming.delete(record.id); // from here on a completion queues a normal push
      if (controller.signal.aborted) return;
      const current = await this.deps.store.get(record.id);
      if (current?.state === 'pushing') return this.#onFailure(current, auth, err, log); // completed meanwhile
      this.#noStream.add(record.id);
      const reason = reader.stalled ?? (err instanceof Error ? err.message : String(err));
      log.warn({ reason }, 'streaming push given up; the upload will be pushed once complete');
    } finally {
      this.#leases.stop(record.id);
      this.#streaming.delete(record.id);
      this.#inflight.delete(record.id);
      this.#pushed.delete(record.id);
      ended();
    }
  }

  async #onFailure(record: UploadRecord, auth: GlanceAuth, err: unknown, log: Logger): Promise<void> {
    if (movedOn(err, log)) return;
    if (err instanceof GlanceHttpError) {
      const error: PushError = { code: 'glance_refused', message: err.message, httpStatus: err.status };
      if (err.status === 401) {
        await this.deps.tokens.forget(record.id, auth.token);
        const error401: PushError = { ...error, code: 'token_rejected' };
        if (await this.deps.tokens.tokenFor(record.id)) {
          log.warn('Glance refused the token; a fresher one arrived meanwhile');
          return this.#retry(record, error401, log);
        }
        log.warn('Glance refused the token; waiting for a fresh one');
        return void (await this.#move(record.id, LEASED_STATES, 'awaiting_token', { error: error401 }));
      }
      if (err.status === 409) return this.#lookAgain(record, auth, log);
      if (err.status >= 500) return this.#retry(record, { ...error, code: 'glance_error' as const }, log);
      return this.#fail(record, error, log);
    }
    if (err instanceof GlanceNetworkError) {
      return this.#retry(record, { code: 'glance_unreachable', message: err.message }, log);
    }
    log.error({ err }, 'push failed');
    return this.#fail(record, { code: 'internal', message: err instanceof Error ? err.message : String(err) }, log);
  }

  /** Glance said 409: whether that is success, a wait or a failure depends on the image now. */
  async #lookAgain(record: UploadRecord, auth: GlanceAuth, log: Logger): Promise<void> {
    try {
      const image = await this.deps.glance.getImage(auth, record.imageId);
      const verdict = await judgeImage(image, record.size, (algo) => this.#hashOf(record, algo, log));
      await this.#settle(record, verdict, image, log);
    } catch (err) {
      await this.#onFailure(record, auth, err, log);
    }
  }

  async #settle(record: UploadRecord, verdict: ImageVerdict, image: Image, log: Logger): Promise<void> {
    switch (verdict.kind) {
      case 'done':
        return this.#activate(record, image, log);
      case 'wait':
        return this.#retry(record, { code: 'image_busy', message: verdict.why }, log);
      case 'push':
        return this.#retry(record, { code: 'image_reset', message: 'image went back to queued' }, log);
      case 'fail':
        return this.#fail(record, { code: verdict.code, message: verdict.message }, log, snapshot(image));
    }
  }

  async #retry(record: UploadRecord, error: PushError, log: Logger): Promise<void> {
    if (record.attempts >= this.policy.maxAttempts) {
      const message = `gave up after ${record.attempts} attempts: ${error.message}`;
      return this.#fail(record, { ...error, message }, log);
    }
    const delay = backoffDelay(record.attempts, this.policy.retryBaseMs, this.policy.retryMaxMs);
    const nextAttemptAt = new Date(Date.now() + delay).toISOString();
    log.warn({ error, delay }, 'push will be retried');
    await this.#move(record.id, LEASED_STATES, 'retrying', { error, nextAttemptAt });
    await this.#queue.add(record.id, { delayMs: delay });
  }

  async #fail(record: UploadRecord, error: PushError, log: Logger, glance?: GlanceSnapshot): Promise<void> {
    log.error({ error }, 'push failed');
    await this.#move(record.id, LEASED_STATES, 'failed', { error, nextAttemptAt: null, ...(glance ? { glance } : {}) });
    this.#dropHashing(record.id); // a restart hashes again: the bytes may have been replaced by then
  }

  async #activate(record: UploadRecord, image: Image, log: Logger): Promise<void> {
    this.deps.delivered(record.id);
    await this.#move(record.id, LEASED_STATES, 'active', { pushed: record.size, glance: snapshot(image), error: null, nextAttemptAt: null });
    log.info('image active');
    if (image.os_hash_algo) this.#algos.set(record.glanceUrl, image.os_hash_algo);
    await this.deps.tokens.forget(record.id);
    this.#dropHashing(record.id);
    await this.deps.files.release(record.id).catch((err: unknown) => log.warn({ err }, 'could not free the pushed data'));
  }

  #progress(uploadId: string, bytes: number): void {
    const now = Date.now();
    const last = this.#pushed.get(uploadId);
    const due = !last || now - last.sentAt >= PROGRESS_EVERY_MS;
    this.#pushed.set(uploadId, { bytes, sentAt: due ? now : last.sentAt });
    if (due) this.deps.events.publish({ kind: 'progress', id: uploadId, pushed: bytes });
  }

  async #get(uploadId: string): Promise<UploadRecord> {
    const record = await this.deps.store.get(uploadId);
    if (!record) throw new NotFoundError(`upload ${uploadId} not found`);
    return record;
  }
}

interface StreamingPush {
  /** The upload is complete and checked: the last byte may go. */
  released: boolean;
  signal: AbortSignal;
  abort(): void;
  /** Settles once the streaming attempt has ended, however it ended. */
  done: Promise<void>;
}

function snapshot(image: Image): GlanceSnapshot {
  const { status, size, checksum, os_hash_algo, os_hash_value } = image;
  return { status, size, checksum, os_hash_algo, os_hash_value };
}
