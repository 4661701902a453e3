import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { GlanceHttpError, GlanceNetworkError } from './errors.js';
import { redact } from './redact.js';
import { jsonOrThrow } from './response.js';
import { closeDispatcher } from './dispatcher.js';

export interface CatalogEntry {
  type: string;
  endpoints: { interface: string; region_id?: string; region?: string; url: string }[];
}

/** Who a token speaks for, as Keystone says. */
export interface TokenIdentity {
  userId: string;
  /** The project the token is scoped to; undefined for an unscoped or domain-scoped token. */
  projectId: string | undefined;
  /** Role names on that project. */
  roles: string[];
  /**
   * The token stands for a delegation (an application credential, a trust, OAuth, EC2), not for
   * the user's own sign-in: Keystone's docs call a trust made with one an escalation.
   */
  delegated: boolean;
  expiresAt: number;
  catalog: CatalogEntry[];
}

interface TokenBody {
  token: {
    user: { id: string };
    project?: { id: string };
    roles?: { name: string }[];
    methods?: string[];
    'OS-TRUST:trust'?: unknown;
    expires_at: string;
    catalog?: CatalogEntry[];
  };
}

export interface KeystoneOptions {
  /** How long a validation is trusted before Keystone is asked again (a revoked token stops within this). */
  cacheMs?: number;
  dispatcher?: Dispatcher;
}

const CACHE_MAX = 10_000;
/** Keystone's own sign-in methods (its primary auth methods); anything else is a delegated credential. */
const SIGN_IN_METHODS = new Set(['password', 'token', 'totp', 'external', 'mapped', 'openid', 'saml2', 'kerberos', 'x509']);

/**
 * Token validation against Keystone v3 (`GET /auth/tokens`: a token may read itself, so no
 * service credentials are needed). Cached by the token's hash, never by the token itself.
 */
export class Keystone {
  readonly #cache = new Map<string, { identity: TokenIdentity; until: number }>();
  readonly #dispatcher: Dispatcher;
  readonly #cacheMs: number;

  constructor(
    readonly authUrl: string,
    options: KeystoneOptions = {},
  ) {
    this.#dispatcher = options.dispatcher ?? new Agent({ connect: { timeout: 10_000 } });
    this.#cacheMs = options.cacheMs ?? 10_000;
  }

  /**
   * Throws GlanceHttpError(401) for a token Keystone does not accept, GlanceNetworkError when it
   * cannot be asked. `fresh`: ask Keystone even if a recent answer is cached (a token that Glance
   * has just refused may be revoked).
   */
  async identify(token: string, fresh = false): Promise<TokenIdentity> {
    const key = hashOf(token);
    const hit = this.#cache.get(key);
    if (!fresh && hit && hit.until > Date.now()) return hit.identity;
    const identity = await this.#validate(token);
    if (this.#cache.size >= CACHE_MAX) this.#cache.clear();
    this.#cache.set(key, { identity, until: Math.min(Date.now() + this.#cacheMs, identity.expiresAt) });
    return identity;
  }

  async #validate(token: string): Promise<TokenIdentity> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.authUrl}/auth/tokens`, {
        dispatcher: this.#dispatcher,
        headers: { 'x-auth-token': token, 'x-subject-token': token, accept: 'application/json' },
        headersTimeout: 15_000,
        bodyTimeout: 15_000,
      });
    } catch (err) {
      // No `cause`: the logger would print its text, which redact() has not seen.
      throw new GlanceNetworkError(redact(`keystone: ${(err as Error).message}`));
    }
    let body: TokenBody;
    try {
      body = await jsonOrThrow<TokenBody>(res);
    } catch (err) {
      // Keystone says 404 for a subject token it does not know: to the caller that is a bad token.
      if (err instanceof GlanceHttpError && (err.status === 404 || err.status === 403)) {
        throw new GlanceHttpError(401, 'Keystone rejected the token');
      }
      if (err instanceof GlanceHttpError) throw err;
      // A 2xx that is not JSON (a proxy's page, say): its text stays out of logs and answers.
      throw new GlanceNetworkError('keystone: the answer was not a token document');
    }
    const t = body.token;
    return {
      userId: t.user.id,
      projectId: t.project?.id,
      roles: (t.roles ?? []).map((r) => r.name),
      delegated: t['OS-TRUST:trust'] !== undefined || !(t.methods ?? []).every((m) => SIGN_IN_METHODS.has(m)) || !t.methods?.length,
      expiresAt: Date.parse(t.expires_at),
      catalog: t.catalog ?? [],
    };
  }

  close(): Promise<void> {
    return closeDispatcher(this.#dispatcher);
  }
}

export function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
