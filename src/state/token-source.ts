/**
 * Where the push finds the freshest token each upload's callers sent. Tokens never reach disk:
 * a restarted gateway holds none and waits for the next request. A shared implementation must
 * keep them out of anything persistent too. Every implementation runs test/contracts/token-source.ts.
 */
export interface TokenSource {
  remember(uploadId: string, token: string): Promise<void>;
  tokenFor(uploadId: string): Promise<string | undefined>;
  /** Drop the upload's token; with `token`, only if it is still that one (a newer one stays). */
  forget(uploadId: string, token?: string): Promise<void>;
}

/** This process's memory only. */
export class MemoryTokenSource implements TokenSource {
  readonly #tokens = new Map<string, string>();

  async remember(uploadId: string, token: string): Promise<void> {
    this.#tokens.set(uploadId, token);
  }

  async tokenFor(uploadId: string): Promise<string | undefined> {
    return this.#tokens.get(uploadId);
  }

  async forget(uploadId: string, token?: string): Promise<void> {
    if (token === undefined || this.#tokens.get(uploadId) === token) this.#tokens.delete(uploadId);
  }
}
