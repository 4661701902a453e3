import type { TokenSource } from '../state/token-source.js';
import type { Trusts } from './trusts.js';

/**
 * The tokens a push acts with: the uploader's own while one is held and valid, else one from the
 * upload's trust. Forgetting a refused token moves on to the next: a refused client token makes
 * way for the trust, a refused trust token is fetched anew.
 */
export class PushTokens implements TokenSource {
  constructor(
    private readonly clients: TokenSource,
    private readonly trusts: Trusts,
  ) {}

  remember(uploadId: string, token: string, expiresAt?: number): Promise<void> {
    return this.clients.remember(uploadId, token, expiresAt);
  }

  async tokenFor(uploadId: string): Promise<string | undefined> {
    return (await this.clients.tokenFor(uploadId)) ?? (await this.trusts.token(uploadId));
  }

  async has(uploadId: string): Promise<boolean> {
    return (await this.clients.has(uploadId)) || (await this.trusts.has(uploadId));
  }

  async forget(uploadId: string, token?: string): Promise<void> {
    await this.clients.forget(uploadId, token);
    if (token !== undefined) await this.trusts.refusedToken(uploadId, token);
  }
}
