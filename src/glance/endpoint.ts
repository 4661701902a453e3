import { NoImageEndpointError } from './errors.js';
import type { CatalogEntry, TokenIdentity } from './keystone.js';

/** Where a caller's images live. */
export interface EndpointResolver {
  resolve(identity: TokenIdentity): string;
}

export class StaticEndpoint implements EndpointResolver {
  constructor(private readonly url: string) {}
  resolve(): string {
    return this.url;
  }
}

/** The image endpoint from the caller's own token catalog (Keystone v3, as validated). */
export class CatalogEndpoint implements EndpointResolver {
  constructor(
    private readonly iface: string,
    private readonly region: string | undefined,
  ) {}

  resolve(identity: TokenIdentity): string {
    return this.#pick(identity.catalog);
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
