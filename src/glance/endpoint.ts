import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { GlanceHttpError, GlanceNetworkError, NoImageEndpointError } from './errors.js';
import { jsonOrThrow } from './response.js';

/** Where a caller's images live. */
export interface EndpointResolver {
  resolve(token: string): Promise<string>;
}

export class StaticEndpoint implements EndpointResolver {
  constructor(private readonly url: string) {}
  async resolve(): Promise<string> {
    return this.url;
  }
}

interface CatalogEntry {
  type: string;
  endpoints: { interface: string; region_id?: string; region?: string; url: string }[];
}

const CACHE_MS = 5 * 60_000;
const CACHE_MAX = 10_000;

/** The image endpoint from the caller's own token catalog (Keystone v3), cached per token hash. */
export class CatalogEndpoint implements EndpointResolver {
  readonly #cache = new Map<string, { url: string; until: number }>();

  constructor(
    private readonly authUrl: string,
    private readonly iface: string,
    private readonly region: string | undefined,
    private readonly dispatcher: Dispatcher = new Agent({ connect: { timeout: 10_000 } }),
  ) {}

  async resolve(token: string): Promise<string> {
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.#cache.get(key);
    if (hit && hit.until > Date.now()) return hit.url;

    const catalog = await this.#catalog(token);
    const url = this.#pick(catalog);
    if (this.#cache.size >= CACHE_MAX) this.#cache.clear();
    this.#cache.set(key, { url, until: Date.now() + CACHE_MS });
    return url;
  }

  async #catalog(token: string): Promise<CatalogEntry[]> {
    let res: Dispatcher.ResponseData;
    try {
      // A token may read itself: no service credentials needed.
      res = await request(`${this.authUrl}/auth/tokens`, {
        dispatcher: this.dispatcher,
        headers: { 'x-auth-token': token, 'x-subject-token': token, accept: 'application/json' },
        headersTimeout: 15_000,
        bodyTimeout: 15_000,
      });
    } catch (err) {
      throw new GlanceNetworkError(`keystone: ${(err as Error).message}`, { cause: err });
    }
    try {
      const body = await jsonOrThrow<{ token: { catalog?: CatalogEntry[] } }>(res);
      return body.token.catalog ?? [];
    } catch (err) {
      // Keystone says 404 for a subject token it does not know: to the caller that is a bad token.
      if (err instanceof GlanceHttpError && err.status === 404) throw new GlanceHttpError(401, 'Keystone rejected the token');
      throw err;
    }
  }

  #pick(catalog: CatalogEntry[]): string {
    const endpoint = catalog
      .filter((s) => s.type === 'image')
      .flatMap((s) => s.endpoints)
      .find(
        (e) => e.interface === this.iface && (!this.region || e.region_id === this.region || e.region === this.region),
      );
    if (!endpoint) {
      throw new NoImageEndpointError(`no ${this.iface} image endpoint${this.region ? ` in ${this.region}` : ''} in the catalog`);
    }
    return endpoint.url.replace(/\/+$/, '').replace(/\/v2(\.\d+)?$/, '');
  }
}
