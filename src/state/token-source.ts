/**
 * Where the push finds the freshest token for each upload. Tokens never reach disk: a restarted
 * gateway holds none of its clients' tokens. A shared implementation must keep them out of
 * anything persistent too. Every implementation runs test/contracts/token-source.ts.
 */
export interface TokenSource {
  /** Keep the token a caller of the upload sent; `expiresAt` (ms) as Keystone said, if known. */
  remember(uploadId: string, token: string, expiresAt?: number): Promise<void>;
  /** The token to act with now; undefined when none is held or the one held has expired. */
  tokenFor(uploadId: string): Promise<string | undefined>;
  /** Whether `tokenFor` can give one, without asking anyone for it. */
  has(uploadId: string): Promise<boolean>;
  /** Drop the upload's token; with `token`, only if it is still that one (a newer one stays). */
  forget(uploadId: string, token?: string): Promise<void>;
}

/** A token this close to its expiry is not started with: Keystone checks it when a request starts. */
export const EXPIRY_MARGIN_MS = 30_000;

/** This process's memory only. */
export class MemoryTokenSource implements TokenSource {
  readonly #tokens = new Map<string, { token: string; expiresAt: number }>();

  async remember(uploadId: string, token: string, expiresAt = Infinity): Promise<void> {
    this.#tokens.set(uploadId, { token, expiresAt });
  }

  async tokenFor(uploadId: string): Promise<string | undefined> {
    const held = this.#tokens.get(uploadId);
    return held && held.expiresAt - EXPIRY_MARGIN_MS > Date.now() ? held.token : undefined;
  }

  async has(uploadId: string): Promise<boolean> {
    return (await this.tokenFor(uploadId)) !== undefined;
  }

  async forget(uploadId: string, token?: string): Promise<void> {
    if (token === undefined || this.#tokens.get(uploadId)?.token === token) this.#tokens.delete(uploadId);
  }
}
