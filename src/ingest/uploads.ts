import { timingSafeEqual } from 'node:crypto';
import { GlanceUnreachableError, NotFoundError, TokenMissingError } from '../errors.js';
import type { GlanceClient } from '../glance/client.js';
import type { Keystone } from '../glance/keystone.js';
import type { Logger } from '../logger.js';
import { heldElsewhere } from '../state/lease.js';
import type { UploadStateStore } from '../state/state-store.js';
import type { TokenSource } from '../state/token-source.js';
import type { UploadEvents } from '../state/upload-events.js';
import { newRecord, type UploadRecord, type UploadState } from '../state/upload-record.js';
import type { Pusher } from '../transfer/pusher.js';
import type { Trusts, Unattended } from '../transfer/trusts.js';
import type { ContentGuard } from './content-guard.js';
import { HEAD_BYTES } from './content/inspect.js';
import { asRequestError } from './glance-errors.js';
import type { GuardedStore } from './guarded-store.js';
import { identify, type Admitted } from './preflight.js';
import type { Reservations } from './reservations.js';

export interface UploadsDeps {
  store: UploadStateStore;
  events: UploadEvents;
  guard: ContentGuard;
  tokens: TokenSource;
  glance: GlanceClient;
  keystone: Keystone;
  files: GuardedStore;
  pusher: Pusher;
  reservations: Reservations;
  trusts: Trusts;
  logger: Logger;
  /** This process as a push lease owner: start and sweep leave other instances' pushes alone. */
  instanceId: string;
}

/** What `GET /files/{id}/status` and the event stream show. */
export type UploadStatus = Pick<
  UploadRecord,
  'id' | 'imageId' | 'state' | 'size' | 'pushed' | 'attempts' | 'nextAttemptAt' | 'glance' | 'error' | 'createdAt' | 'updatedAt'
> & { offset: number } & Unattended;

/**
 * How a request uses an upload. `push`: the uploader's own requests (tus, `POST /push`), whose
 * token becomes the one the push uses. `watch`: status and events, whose token is taken only
 * when none is held (a watcher may see the image without being allowed to upload to it).
 */
export type Access = 'push' | 'watch';

/** The uploads as the HTTP layer sees them: who may touch one, what it looks like, removing one. */
export class Uploads {
  readonly #completing = new Map<string, Promise<UploadState>>();

  constructor(private readonly deps: UploadsDeps) {}

  /** Record a new upload admitted by the pre-flight; throws UploadExistsError for a second one per image. */
  async create(uploadId: string, admitted: Admitted, size: number, token: string): Promise<void> {
    const { imageId, projectId, userId, createdImage, glanceUrl, diskFormat, expiresAt } = admitted;
    const record = newRecord({ id: uploadId, imageId, projectId, userId, createdImage, glanceUrl, diskFormat, size });
    try {
      await this.deps.store.create(record);
    } catch (err) {
      this.deps.reservations.release(uploadId);
      if (createdImage) void this.#deleteCreatedImage(record, token);
      throw err;
    }
    await this.deps.tokens.remember(uploadId, token, expiresAt);
    this.deps.trusts.created(uploadId, token);
  }

  /**
   * Let a request at an upload through only if its token is scoped to the project that owns the
   * upload's image (else 404, as for an unknown upload: seeing an image is not owning it); writing
   * and pushing (`push`) take a token of the user who created the upload. Then keep the token as
   * `access` says, and move on an upload that waits for one. Glance is not asked: a hung Glance
   * cannot hold up an upload's own requests.
   */
  async authorize(uploadId: string, token: string | null, access: Access): Promise<UploadRecord> {
    if (!token) throw new TokenMissingError('X-Auth-Token is required');
    const record = await this.deps.store.get(uploadId);
    if (!record) throw new NotFoundError(`upload ${uploadId} not found`);
    const { uploader, expiresAt } = await this.#isUploader(record, token);
    if (access === 'push' && !uploader) throw new NotFoundError(`upload ${uploadId} not found`);
    // A watcher's token serves the push only when it is the uploader's and the push waits for one.
    const wanted = access === 'push' || (!(await this.deps.tokens.has(uploadId)) && !SETTLED.includes(record.state));
    if (uploader && wanted) await this.deps.tokens.remember(uploadId, token, expiresAt);
    // An upload without a trust (older than trusts, or Keystone was away) asks for one with its uploader's token.
    if (access === 'push' && !record.trust && record.state !== 'active') this.deps.trusts.grant(uploadId, token);
    await this.#moveOn(record);
    return record;
  }

  /** Whether the token is the uploader's; throws NotFoundError for a token of another project. */
  async #isUploader(record: UploadRecord, token: string): Promise<{ uploader: boolean; expiresAt?: number }> {
    let identity: { projectId: string; userId: string; expiresAt: number };
    try {
      // Glance refused the push token of an upload waiting for one: do not trust a cached answer.
      identity = await identify(this.deps.keystone, token, record.state === 'awaiting_token');
    } catch (err) {
      // While Keystone cannot be asked, a token this upload already proved keeps it resumable.
      if (err instanceof GlanceUnreachableError && sameToken(await this.deps.tokens.tokenFor(record.id), token)) return { uploader: true };
      throw err;
    }
    const { expiresAt } = identity;
    if (record.projectId === undefined) return { uploader: await this.#adoptOwner(record, token, identity), expiresAt };
    if (identity.projectId !== record.projectId) throw new NotFoundError(`upload ${record.id} not found`);
    return { uploader: identity.userId === record.userId, expiresAt };
  }

  /** A record written before owners were kept learns them from Glance, once: the first owner's user becomes its uploader. */
  async #adoptOwner(record: UploadRecord, token: string, identity: { projectId: string; userId: string }): Promise<boolean> {
    const image = await this.deps.glance.getImage({ endpoint: record.glanceUrl, token }, record.imageId).catch((err: unknown) => {
      throw asRequestError(err, 'upload');
    });
    if (image.owner !== identity.projectId) throw new NotFoundError(`upload ${record.id} not found`);
    await this.deps.store.update(record.id, { projectId: identity.projectId, userId: identity.userId, createdImage: false });
    return true;
  }

  /** A failed creation leaves nothing: the client never learnt the upload's URL. */
  async discard(uploadId: string): Promise<void> {
    await this.#remove(uploadId);
  }

  /** Remove an upload's data (which forgets it); with no data left, forget it all the same. */
  #remove(uploadId: string): Promise<void> {
    return this.deps.files.remove(uploadId).catch(() => this.forget(uploadId));
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

  /**
   * A PATCH stored its bytes (one shorter than tus's progress interval counts too). The last one
   * of an upload is not news: its completion follows, and with it a push of the whole file.
   */
  async stored(uploadId: string, offset: number): Promise<void> {
    const record = await this.deps.store.get(uploadId);
    if (record && offset < record.size) this.received(uploadId, offset);
    else this.deps.reservations.progress(uploadId, offset);
  }

  /** Bytes are arriving (tus's throttled progress): tell watchers, and let the push start early. */
  received(uploadId: string, offset: number): void {
    this.deps.reservations.progress(uploadId, offset);
    this.deps.events.publish({ kind: 'progress', id: uploadId, offset });
    // Bytes past the head have passed the content check: they may go to Glance already.
    if (offset >= HEAD_BYTES) {
      this.deps.pusher.received(uploadId).catch((err: unknown) => this.deps.logger.warn({ err, uploadId }, 'streaming push not started'));
    }
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
    const pushed = this.deps.pusher.livePushed(id) ?? this.deps.events.pushed(id) ?? record.pushed;
    const unattended = this.deps.trusts.describe(record);
    return { id, imageId, state, size, offset, pushed, attempts, nextAttemptAt, glance, error, ...unattended, createdAt, updatedAt };
  }

  /** Forget an upload whose data is gone (terminated, expired, refused), an image the gateway made for it, and its trust. */
  async forget(uploadId: string): Promise<void> {
    const record = await this.deps.store.get(uploadId);
    const deleteImage = record?.createdImage === true && record.state !== 'active';
    // The client's token, or the trust's while it lasts (asked only when an image is to go): the image goes before the trust does.
    const token = deleteImage ? ((await this.deps.tokens.tokenFor(uploadId)) ?? (await this.deps.trusts.token(uploadId).catch(() => undefined))) : undefined;
    await this.deps.pusher.cancel(uploadId);
    await this.deps.tokens.forget(uploadId);
    this.deps.reservations.release(uploadId);
    this.deps.guard.forget(uploadId);
    await this.deps.store.delete(uploadId);
    void (async () => {
      if (deleteImage) await this.#deleteCreatedImage(record, token);
      await this.deps.trusts.revoke(record);
    })();
  }

  /**
   * The gateway's own image goes with its upload: still empty, or `saving` only the bytes of our
   * own push, just cancelled. One that somehow became active is left alone.
   */
  async #deleteCreatedImage(record: UploadRecord, token: string | undefined): Promise<void> {
    const log = this.deps.logger.child({ uploadId: record.id, imageId: record.imageId });
    if (!token) return log.warn('the image the gateway created stays queued: no token is held to delete it');
    const auth = { endpoint: record.glanceUrl, token };
    try {
      const image = await this.deps.glance.getImage(auth, record.imageId);
      if (image.status !== 'queued' && image.status !== 'saving') {
        return log.warn({ status: image.status }, 'created image not deleted: it holds data');
      }
      await this.deps.glance.deleteImage(auth, record.imageId);
      log.info('created image deleted with its upload');
    } catch (err) {
      log.warn({ err }, 'could not delete the image the gateway created');
    }
  }

  /**
   * Remove what nobody will come back for: unfinished uploads idle past the expiry (by their last
   * write), and finished ones (active, failed) or ones waiting for a token that never came,
   * untouched as long. Complete uploads waiting for a push slot or a retry are never removed.
   */
  async sweep(expiryMs: number): Promise<number> {
    let removed = await this.deps.files.deleteExpired();
    const cutoff = Date.now() - expiryMs;
    for (const record of await this.deps.store.list()) {
      if (!ABANDONED.includes(record.state) || Date.parse(record.updatedAt) > cutoff) continue;
      if (heldElsewhere(record, this.deps.instanceId)) continue;
      await this.#remove(record.id);
      removed++;
    }
    await this.#reconcileTrusts();
    return removed;
  }

  /**
   * At start: queue uploads that completed just before a stop. A record whose data is not on this
   * disk stays (another instance may hold it): whatever removes an upload's data removes its record.
   */
  async recover(): Promise<void> {
    for (const record of await this.deps.store.list()) {
      if (heldElsewhere(record, this.deps.instanceId)) continue;
      const offset = await this.deps.files.offset(record.id).catch(() => undefined);
      if (offset === undefined) {
        this.deps.logger.warn({ uploadId: record.id, state: record.state }, 'upload data not on this disk; record left as it is');
        continue;
      }
      if (record.state === 'active') continue;
      this.deps.reservations.restore(record.id, record.projectId, record.size, offset);
      if (record.state === 'receiving' && offset >= record.size) {
        await this.complete(record.id).catch((err: unknown) =>
          this.deps.logger.warn({ err, uploadId: record.id }, 'completed upload refused at start'),
        );
      }
    }
    await this.#reconcileTrusts();
    await this.deps.pusher.recovery.recover();
  }

  async #reconcileTrusts(): Promise<void> {
    await this.deps.trusts.reconcile().catch((err: unknown) => this.deps.logger.warn({ err }, 'trusts not reconciled now; the next sweep tries again'));
  }
}

/** The push is over (for now): a watcher's token is not kept for it. */
const SETTLED: readonly UploadState[] = ['active', 'failed'];

/** States in which nobody may ever come back for an upload: removed once untouched past the expiry. */
const ABANDONED: readonly UploadState[] = ['active', 'failed', 'awaiting_token'];

function sameToken(known: string | undefined, given: string): boolean {
  if (known === undefined || known.length !== given.length) return false;
  return timingSafeEqual(Buffer.from(known), Buffer.from(given));
}
