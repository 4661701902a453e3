/**
 * The freshest token each upload's callers sent, in memory only: tokens never
 * reach disk, so a restarted gateway holds none and waits for the next request.
 */
export class TokenVault {
  readonly #tokens = new Map<string, string>();

  remember(uploadId: string, token: string): void {
    this.#tokens.set(uploadId, token);
  }

  get(uploadId: string): string | undefined {
    return this.#tokens.get(uploadId);
  }

  /** Drop a token Glance refused, unless a newer one replaced it meanwhile. */
  forget(uploadId: string, token?: string): void {
    if (token === undefined || this.#tokens.get(uploadId) === token) this.#tokens.delete(uploadId);
  }
}
