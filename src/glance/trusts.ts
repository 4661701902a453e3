import { Agent, type Dispatcher, request } from 'undici';
import type { Secret } from '../secret.js';
import { GlanceClientError, GlanceHttpError, GlanceNetworkError } from './errors.js';
import { redact } from './redact.js';
import { emptyOrThrow, jsonOrThrow } from './response.js';
import { closeDispatcher } from './dispatcher.js';

/** The gateway's own Keystone user: the trustee of every trust. It needs no role. */
export interface ServiceUser {
  name: string;
  domainName: string;
  password: Secret;
}

export interface TrustRequest {
  /** The uploader: the token's user, who delegates. */
  trustorId: string;
  projectId: string;
  /** Role names the uploader holds on the project (all are delegated: the push needs what the upload needed). */
  roles: string[];
  /** ISO time; null for a trust without expiry. */
  expiresAt: string | null;
}

export interface Trust {
  id: string;
  expiresAt: string | null;
}

/** Keystone refused to create a trust with this token (from an application credential or another trust, say). */
export class TrustRefusedError extends GlanceHttpError {}

/** Keystone refused the service user's own credentials: nothing about any one trust can be told. */
export class ServiceCredentialsError extends GlanceClientError {}

/** Renew a trust-scoped token this long before it expires. */
const TOKEN_MARGIN_MS = 5 * 60_000;
const TIMEOUTS = { headersTimeout: 15_000, bodyTimeout: 15_000 };

/**
 * Keystone trusts from the service user's side (`OS-TRUST`): created with the uploader's token,
 * used with the service user's password. Tokens are cached in memory only, by trust id; no token
 * and no password ever leaves this object except in the requests that need them.
 */
export class KeystoneTrusts {
  readonly #dispatcher: Dispatcher;
  readonly #tokens = new Map<string, { token: string; until: number }>();
  #userId: string | undefined;

  constructor(
    readonly authUrl: string,
    private readonly user: ServiceUser,
    dispatcher?: Dispatcher,
  ) {
    this.#dispatcher = dispatcher ?? new Agent({ connect: { timeout: 10_000 } });
  }

  /** The service user's id, proving its credentials; ServiceCredentialsError if Keystone refuses them. */
  async serviceUserId(): Promise<string> {
    if (this.#userId) return this.#userId;
    const { body } = await this.#authenticate(undefined).catch((err: unknown) => {
      if (err instanceof GlanceHttpError && err.status === 401) throw new ServiceCredentialsError(err.message);
      throw err;
    });
    this.#userId = body.token.user.id;
    return this.#userId;
  }

  async create(trustorToken: string, want: TrustRequest): Promise<Trust> {
    const trust = {
      trustor_user_id: want.trustorId,
      trustee_user_id: await this.serviceUserId(),
      project_id: want.projectId,
      roles: want.roles.map((name) => ({ name })),
      impersonation: true,
      allow_redelegation: false,
      expires_at: want.expiresAt,
    };
    const res = await this.#call('POST', '/OS-TRUST/trusts', trustorToken, { trust });
    const body = await jsonOrThrow<{ trust: { id: string; expires_at: string | null } }>(res).catch((err: unknown) => {
      if (err instanceof GlanceHttpError && err.status === 403) throw new TrustRefusedError(403, err.message);
      throw err;
    });
    return { id: body.trust.id, expiresAt: body.trust.expires_at };
  }

  /** A token of the trustor, scoped by the trust; cached until shortly before it expires. GlanceHttpError(401) once the trust is gone. */
  async token(trustId: string): Promise<string> {
    const hit = this.#tokens.get(trustId);
    if (hit && hit.until > Date.now()) return hit.token;
    const { token, body } = await this.#authenticate({ 'OS-TRUST:trust': { id: trustId } }).catch(async (err: unknown) => {
      if (!(err instanceof GlanceHttpError && [401, 403, 404].includes(err.status))) throw err;
      // Keystone says 404 for a trust it no longer has, 403 for one that cannot be used: both mean
      // gone, unless it is the service user's own password that it refuses (rotated, locked).
      await this.#authenticate(undefined).catch((own: unknown) => {
        if (own instanceof GlanceHttpError && own.status === 401) throw new ServiceCredentialsError(own.message);
        throw own;
      });
      throw new GlanceHttpError(401, 'the trust is no longer valid');
    });
    this.#tokens.set(trustId, { token, until: Date.parse(body.token.expires_at) - TOKEN_MARGIN_MS });
    return token;
  }

  /** Drop a cached trust token (Glance refused it); with `token`, only if it is still that one. */
  forgetToken(trustId: string, token?: string): void {
    if (token === undefined || this.#tokens.get(trustId)?.token === token) this.#tokens.delete(trustId);
  }

  /** Delete the trust; one already gone counts as deleted. Only a trust-scoped token may (the trustee's own may not). */
  async delete(trustId: string): Promise<void> {
    let token: string;
    try {
      token = await this.token(trustId);
    } catch (err) {
      if (err instanceof GlanceHttpError && err.status === 401) return this.forgetToken(trustId);
      throw err;
    }
    const res = await this.#call('DELETE', `/OS-TRUST/trusts/${encodeURIComponent(trustId)}`, token);
    this.forgetToken(trustId);
    await emptyOrThrow(res).catch((err: unknown) => {
      if (!(err instanceof GlanceHttpError && err.status === 404)) throw err;
    });
  }

  /** Every trust whose trustee is the service user. */
  async list(): Promise<Trust[]> {
    const userId = await this.serviceUserId();
    const { token } = await this.#authenticate(undefined);
    const res = await this.#call('GET', `/OS-TRUST/trusts?trustee_user_id=${encodeURIComponent(userId)}`, token);
    const body = await jsonOrThrow<{ trusts: { id: string; expires_at: string | null }[] }>(res);
    return body.trusts.map((t) => ({ id: t.id, expiresAt: t.expires_at }));
  }

  close(): Promise<void> {
    this.#tokens.clear();
    return closeDispatcher(this.#dispatcher);
  }

  async #authenticate(scope: object | undefined): Promise<{ token: string; body: { token: { user: { id: string }; expires_at: string } } }> {
    const password = { user: { name: this.user.name, domain: { name: this.user.domainName }, password: this.user.password.reveal() } };
    const auth = { identity: { methods: ['password'], password }, ...(scope ? { scope } : {}) };
    const res = await this.#call('POST', '/auth/tokens', undefined, { auth });
    const token = res.headers['x-subject-token'];
    const body = await jsonOrThrow<{ token: { user: { id: string }; expires_at: string } }>(res);
    if (typeof token !== 'string') throw new GlanceNetworkError('keystone: no X-Subject-Token in the answer');
    return { token, body };
  }

  async #call(method: 'GET' | 'POST' | 'DELETE', path: string, token: string | undefined, body?: object): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers['x-auth-token'] = token;
    if (body) headers['content-type'] = 'application/json';
    try {
      return await request(`${this.authUrl}${path}`, {
        method,
        headers,
        body: body ? JSON.stringify(body) : undefined,
        dispatcher: this.#dispatcher,
        ...TIMEOUTS,
      });
    } catch (err) {
      // No `cause`: the logger would print its text, which redact() has not seen.
      throw new GlanceNetworkError(redact(`keystone: ${(err as Error).message}`));
    }
  }
}
