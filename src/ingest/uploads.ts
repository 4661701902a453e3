import { createHash, timingSafeEqual } from 'node:crypto';
import { GlanceUnreachableError, NotFoundError, TokenMissingError } from '../errors.js';
import type { GlanceClient } from '../glance/client.js';
import type { Logger } from '../logger.js';
import type { UploadStateStore } from '../state/state-store.js';
import type { TokenVault } from '../state/token-vault.js';
import { newRecord, type UploadRecord, type UploadState } from '../state/upload-record.js';
import type { Pusher } from '../transfer/pusher.js';
import { freeBytes } from './disk-space.js';
import type { UploadEvents } from '../state/upload-events.js';
import type { ContentGuard } from './content-guard.js';
import { HEAD_BYTES } from './content/inspect.js';
import type { IngestFileStore } from './file-store.js';
import { asRequestError } from './glance-errors.js';
import type { Admitted } from './preflight.js';

export interface UploadsDeps {
  store: UploadStateStore;
  events: UploadEvents;
  guard: ContentGuard;
  tokens: TokenVault;
  glance: GlanceClient;
  files: IngestFileStore;
  pusher: Pusher;
  logger: Logger;
  storageDir: string;
}

/** What `GET /files/{id}/status` and the event stream show. */
export type UploadStatus = Pick<
  UploadRecord,
  'id' | 'imageId' | 'state' | 'size' | 'pushed' | 'attempts' | 'nextAttemptAt' | 'glance' | 'error' | 'createdAt' | 'updatedAt'
> & { offset: number };

/**
 * How a request uses an upload. `push`: the uploader's own requests (tus, `POST /push`), whose
 * token becomes the one the push uses. `watch`: status and events, whose token is taken only
 * when none is held (a watcher may see the image without being allowed to upload to it).
 */
export type Access = 'push' | 'watch';

/** The uploads as the HTTP layer sees them: who may touch one, what it looks like, removing one. */
export class Uploads {
  readonly #completing = new Map<string, Promise<UploadState>>();
  /** Tokens Glance recently let see an upload's image, by upload: one check per chunk would cost a round trip each. */
  readonly #seen = new Map<string, { tokenHash: string; until: number }>();

  constructor(private readonly deps: UploadsDeps) {}

  /** Record a new upload admitted by the pre-flight; throws UploadExistsError for a second one per image. */
  async create(uploadId: string, admitted: Admitted, size: number, token: string): Promise<void> {
    const { imageId, glanceUrl, diskFormat } = admitted;
    await this.deps.store.create(newRecord({ id: uploadId, imageId, glanceUrl, diskFormat, size }));
    this.deps.tokens.remember(uploadId, token);
  }

  /**
   * Let a request at an upload through only if its token can see the upload's image
   * (else 404, as for an unknown upload); then take its token as `access` says, and
   * move on an upload that waits for one.
   */
  async authorize(uploadId: string, token: string | null, access: Access): Promise<UploadRecord> {
    if (!token) throw new TokenMissingError('X-Auth-Token is required');
    const record = await this.deps.store.get(uploadId);
    if (!record) throw new NotFoundError(`upload ${uploadId} not found`);
    if (!this.#recentlySeen(record, token)) {
      try {
        await this.deps.glance.getImage({ endpoint: record.glanceUrl, token }, record.imageId);
        this.#seen.set(uploadId, { tokenHash: hashOf(token), until: Date.now() + SEEN_MS });
      } catch (err) {
        this.#seen.delete(uploadId);
        const mapped = asRequestError(err, 'upload');
        // While Glance is down, a token this upload already proved keeps it resumable.
        if (!(mapped instanceof GlanceUnreachableError && sameToken(this.deps.tokens.get(uploadId), token))) throw mapped;
      }
    }
    if (access === 'push' || !this.deps.tokens.get(uploadId)) this.deps.tokens.remember(uploadId, token);
    await this.#moveOn(record);
    return record;
  }

  /** Only the push token of a healthy upload is trusted from memory; anything else asks Glance again. */
  #recentlySeen(record: UploadRecord, token: string): boolean {
    const seen = this.#seen.get(record.id);
    if (!seen || seen.until < Date.now() || seen.tokenHash !== hashOf(token)) return false;
    return record.state !== 'awaiting_token' && sameToken(this.deps.tokens.get(record.id), token);
  }

  /** The last byte arrived: the end-of-file content check, then the push. Idempotent, one run at a time. */
  complete(uploadId: string): Promise<UploadState> {
    const running = this.#completing.get(uploadId);
    if (running) return running;
    const run = this.#complete(uploadId).finally(() => this.#completing.delete(uploadId));
    this.#completing.set(uploadId, run);
    return run;
  }

  async #complete(uploadId: string): Promise<UploadState> {
    const record = await this.deps.store.get(uploadId);
    if (!record) throw new NotFoundError(`upload ${uploadId} not found`);
    if (record.state !== 'receiving') return record.state;
    await this.deps.guard.finish(uploadId);
    return this.deps.pusher.submit(uploadId);
  }

  /** Whatever a request can move on: a complete upload whose completion was lost, a push waiting for a token. */
  async #moveOn(record: UploadRecord): Promise<void> {
    if (record.state === 'awaiting_token') return this.deps.pusher.tokenArrived(record.id);
    if (record.state !== 'receiving') return;
    const offset = await this.deps.files.offset(record.id).catch(() => 0);
    if (offset < record.size) return;
    await this.complete(record.id).catch((err: unknown) =>
      this.deps.logger.warn({ err, uploadId: record.id }, 'completion failed; the next request tries again'),
    );
  }

  /** Bytes are arriving (tus's throttled progress): tell watchers, and let the push start early. */
  received(uploadId: string, offset: number): void {
    this.deps.events.publish({ kind: 'progress', id: uploadId, offset });
    // Bytes past the head have passed the content check: they may go to Glance already.
    if (offset >= HEAD_BYTES) this.deps.pusher.received(uploadId);
  }

  async record(uploadId: string): Promise<UploadRecord | undefined> {
    return this.deps.store.get(uploadId);
  }

  async status(uploadId: string): Promise<UploadStatus> {
    const record = await this.deps.store.get(uploadId);
    if (!record) throw new NotFoundError(`upload ${uploadId} not found`);
    return this.view(record);
  }

  async view(record: UploadRecord): Promise<UploadStatus> {
    const offset = record.state === 'receiving' ? await this.deps.files.offset(record.id).catch(() => 0) : record.size;
    const { id, imageId, state, size, attempts, nextAttemptAt, glance, error, createdAt, updatedAt } = record;
    const pushed = this.deps.pusher.livePushed(id) ?? record.pushed;
    return { id, imageId, state, size, offset, pushed, attempts, nextAttemptAt, glance, error, createdAt, updatedAt };
  }

  /** Forget an upload whose data is gone (terminated, expired, refused). */
  async forget(uploadId: string): Promise<void> {
    this.#seen.delete(uploadId);
    this.deps.pusher.cancel(uploadId);
    this.deps.tokens.forget(uploadId);
    await this.deps.store.delete(uploadId);
  }

  /**
   * Remove what nobody will come back for: unfinished uploads idle past the expiry (by their last
   * write), and finished ones (active, failed) untouched as long. Complete uploads waiting for
   * their push are never removed.
   */
  async sweep(expiryMs: number): Promise<number> {
    let removed = await this.deps.files.deleteExpired();
    const cutoff = Date.now() - expiryMs;
    for (const record of await this.deps.store.list()) {
      if ((record.state !== 'active' && record.state !== 'failed') || Date.parse(record.updatedAt) > cutoff) continue;
      await this.deps.files.remove(record.id).catch(() => this.forget(record.id));
      removed++;
    }
    return removed;
  }

  /** Free storage less what the uploads in progress still need. */
  async spareBytes(): Promise<number> {
    let owed = 0;
    for (const record of await this.deps.store.list()) {
      if (record.state === 'receiving') owed += record.size - (await this.deps.files.offset(record.id).catch(() => 0));
    }
    return (await freeBytes(this.deps.storageDir)) - owed;
  }

  /** At start: drop records whose data is gone, and queue uploads that completed just before a stop. */
  async recover(): Promise<void> {
    for (const record of await this.deps.store.list()) {
      const offset = await this.deps.files.offset(record.id).catch(() => undefined);
      if (offset === undefined) {
        this.deps.logger.warn({ uploadId: record.id }, 'upload data missing; record dropped');
        await this.deps.store.delete(record.id);
      } else if (record.state === 'receiving' && offset >= record.size) {
        await this.complete(record.id).catch((err: unknown) =>
          this.deps.logger.warn({ err, uploadId: record.id }, 'completed upload refused at start'),
        );
      }
    }
    await this.deps.pusher.recover();
  }
}

const SEEN_MS = 10_000;

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function sameToken(known: string | undefined, given: string): boolean {
  if (known === undefined || known.length !== given.length) return false;
  return timingSafeEqual(Buffer.from(known), Buffer.from(given));
}
