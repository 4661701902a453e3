import { NotFoundError } from '../errors.js';
import { GlanceHttpError } from '../glance/errors.js';
import { type KeystoneTrusts, TrustRefusedError } from '../glance/trusts.js';
import type { Logger } from '../logger.js';
import type { UploadStateStore } from '../state/state-store.js';
import { StateConflictError } from '../state/transitions.js';
import type { UploadRecord } from '../state/upload-record.js';

export interface TrustsDeps {
  /** undefined: no service user is configured, and every push needs its client's token. */
  keystone: KeystoneTrusts | undefined;
  /** Who the token speaks for: the trustor, the project and the roles to delegate. */
  identify(token: string): Promise<{ userId: string; projectId: string; roles: string[]; delegated: boolean }>;
  store: Pick<UploadStateStore, 'get' | 'update' | 'list'>;
  logger: Logger;
  /** An upload goes on without a trust: no service user, or Keystone refused one. */
  withoutTrust(reason: 'disabled' | 'refused'): void;
  /** The upload now has a trust: a push waiting for a token can go on. */
  granted(uploadId: string): Promise<void>;
  /** How long an upload may live (0: for ever); its trust lasts that plus a day. */
  uploadExpiryMs: number;
}

/** Whether a push can finish without its client, and if not, why. */
export interface Unattended {
  unattended: boolean;
  unattendedReason: string | null;
}

const MARGIN_MS = 24 * 3600_000;
const NO_EXPIRY_MS = 30 * 24 * 3600_000;
/** A trust younger than this may belong to a grant whose record is not written yet: reconciling leaves it. */
const GRACE_MS = 10 * 60_000;
/** States whose push is over: their trust, if one is left, goes. */
const ENDED = new Set(['active', 'failed']);

/**
 * One Keystone trust per upload, from its uploader to the gateway's service user, so that a push
 * can finish after the client has gone (a restart, an expired or revoked token). Created off the
 * request's path, deleted when the upload ends; trusts nobody references are deleted at start
 * and by the sweep. Only trust ids are stored; the tokens they give stay in memory.
 */
export class Trusts {
  readonly #granting = new Map<string, Promise<void>>();
  readonly #window: number;

  constructor(private readonly deps: TrustsDeps) {
    this.#window = (deps.uploadExpiryMs || NO_EXPIRY_MS) + MARGIN_MS;
  }

  get enabled(): boolean {
    return this.deps.keystone !== undefined;
  }

  /** A new upload: its trust is asked for now (or counted as one without). */
  created(uploadId: string, token: string): void {
    if (!this.enabled) return this.deps.withoutTrust('disabled');
    this.grant(uploadId, token);
  }

  /** Ask Keystone for the upload's trust with its uploader's token, in the background; once at a time. */
  grant(uploadId: string, token: string): void {
    if (!this.deps.keystone || this.#granting.has(uploadId)) return;
    const run = this.#grant(this.deps.keystone, uploadId, token)
      .catch((err: unknown) => this.deps.logger.warn({ err, uploadId }, 'no trust for now: the push needs its client until one is granted'))
      .finally(() => this.#granting.delete(uploadId));
    this.#granting.set(uploadId, run);
  }

  /** Resolves once the grants under way have ended. */
  async idle(): Promise<void> {
    await Promise.all(this.#granting.values());
  }

  async #grant(keystone: KeystoneTrusts, uploadId: string, token: string): Promise<void> {
    const record = await this.deps.store.get(uploadId);
    if (!record || record.trust) return;
    const who = await this.deps.identify(token);
    // Only the uploader's own token delegates for this upload (its callers check that too).
    if (who.userId !== record.userId || who.projectId !== record.projectId) return;
    // Keystone refuses these (and where a deployment opts out of that, it is an escalation): never asked.
    if (who.delegated) return this.#without(uploadId, 'the token comes from an application credential or another trust');
    const base = Date.now() + this.#window;
    let trust: { id: string } | undefined;
    // Keystone refuses a second trust identical to one it has (409): another second makes it differ.
    for (let i = 0; !trust; i++) {
      const expiresAt = new Date(base + i * 1000).toISOString();
      const request = { trustorId: who.userId, projectId: who.projectId, roles: who.roles, expiresAt };
      try {
        trust = await keystone.create(token, request);
      } catch (err) {
        if (err instanceof GlanceHttpError && err.status === 409 && i < 5) continue;
        if (!(err instanceof TrustRefusedError)) throw err;
        return this.#without(uploadId, err.message);
      }
    }
    try {
      // Another instance may have granted one meanwhile: the first recorded stays, this one goes.
      await this.deps.store.update(uploadId, { trust: { id: trust.id } }, (current) => !current.trust);
    } catch (err) {
      await keystone.delete(trust.id).catch(() => undefined); // the sweep gets it otherwise
      if (err instanceof StateConflictError || err instanceof NotFoundError) return;
      throw err;
    }
    this.deps.logger.info({ uploadId, trustId: trust.id }, 'trust granted: the push can finish without its client');
    await this.deps.granted(uploadId);
  }

  async #without(uploadId: string, why: string): Promise<void> {
    this.deps.withoutTrust('refused');
    this.deps.logger.info({ uploadId, reason: why }, 'no trust: the push needs its client');
    const none = `Keystone makes no trust: ${why}`;
    await this.deps.store.update(uploadId, { trust: { none } }, (current) => !current.trust).catch(() => undefined);
  }

  /** A token for the upload from its trust, or undefined if it has none (or it is gone). Throws when Keystone cannot be asked. */
  async token(uploadId: string): Promise<string | undefined> {
    const trustId = trustIdOf(await this.deps.store.get(uploadId));
    if (!trustId || !this.deps.keystone) return undefined;
    try {
      return await this.deps.keystone.token(trustId);
    } catch (err) {
      if (err instanceof GlanceHttpError && err.status === 401) return undefined;
      throw err;
    }
  }

  /** Whether the upload has a trust to act with (without asking Keystone). */
  async has(uploadId: string): Promise<boolean> {
    return this.enabled && trustIdOf(await this.deps.store.get(uploadId)) !== undefined;
  }

  /** Glance refused a token: if it came from the upload's trust, the next one is fetched anew. */
  async refusedToken(uploadId: string, token: string): Promise<void> {
    const trustId = trustIdOf(await this.deps.store.get(uploadId));
    if (trustId) this.deps.keystone?.forgetToken(trustId, token);
  }

  /** The upload ended for good (or is being removed): its trust goes. Failures are left to the next reconcile. */
  async revoke(record: UploadRecord | undefined): Promise<void> {
    const trustId = trustIdOf(record);
    if (!record || !trustId || !this.deps.keystone) return;
    try {
      await this.deps.keystone.delete(trustId);
      await this.deps.store.update(record.id, { trust: null }).catch(() => undefined); // the record may be gone
      this.deps.logger.info({ uploadId: record.id, trustId }, 'trust deleted');
    } catch (err) {
      this.deps.logger.warn({ err, uploadId: record.id, trustId }, 'trust not deleted now; the next start or sweep deletes it');
    }
  }

  /** Delete the service user's trusts that no unfinished upload holds (left by a crash, or a failed delete). */
  async reconcile(): Promise<number> {
    const keystone = this.deps.keystone;
    if (!keystone) return 0;
    const records = await this.deps.store.list();
    const held = new Set(records.filter((r) => !ENDED.has(r.state)).map(trustIdOf));
    const youngest = Date.now() + this.#window - GRACE_MS;
    let deleted = 0;
    for (const trust of await keystone.list()) {
      if (held.has(trust.id) || (trust.expiresAt !== null && Date.parse(trust.expiresAt) > youngest)) continue;
      try {
        await keystone.delete(trust.id);
        deleted++;
        this.deps.logger.info({ trustId: trust.id }, 'trust no upload holds deleted');
      } catch (err) {
        this.deps.logger.warn({ err, trustId: trust.id }, 'trust no upload holds not deleted; tried again later');
      }
    }
    for (const record of records) {
      const stillEnded = (current: UploadRecord) => ENDED.has(current.state) && trustIdOf(current) === trustIdOf(record);
      if (ENDED.has(record.state) && trustIdOf(record)) await this.deps.store.update(record.id, { trust: null }, stillEnded).catch(() => undefined);
    }
    return deleted;
  }

  close(): Promise<void> {
    return this.deps.keystone?.close() ?? Promise.resolve();
  }

  /** What the status says about finishing without the client. */
  describe(record: UploadRecord): Unattended {
    if (record.state === 'active') return { unattended: true, unattendedReason: null };
    if (!this.enabled) return { unattended: false, unattendedReason: 'the gateway has no service user to hold a trust' };
    if (record.state === 'failed') return { unattended: false, unattendedReason: 'the push failed: POST /push with a token of the uploader starts it again' };
    const trust = record.trust;
    if (trust && 'id' in trust) return { unattended: true, unattendedReason: null };
    if (trust) return { unattended: false, unattendedReason: trust.none };
    return { unattended: false, unattendedReason: 'no trust yet: the next request of the uploader asks for one' };
  }
}

function trustIdOf(record: UploadRecord | undefined): string | undefined {
  const trust = record?.trust;
  return trust && 'id' in trust ? trust.id : undefined;
}
