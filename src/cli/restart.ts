import { request } from 'undici';
import { AuthError, type TokenSource } from './auth.js';
import { errorMessage } from './gateway-error.js';
import type { PendingPushes } from './pending.js';
import type { ResumeKey } from './resume-key.js';
import { UploadRefused, urlStorage } from './upload.js';

/** The upload URLs this CLI holds for a target, whatever version of the file they were for. */
export interface HeldUploads {
  urls: string[];
  /** Where they are kept: tus-js-client's state keys and pushes.json keys. */
  storageKeys: string[];
  pendingKeys: string[];
}

export async function heldUploads(stateFile: string, pending: PendingPushes, key: ResumeKey): Promise<HeldUploads> {
  const stored = (await urlStorage(stateFile).findAllUploads()).filter((u) =>
    u.urlStorageKey.startsWith(`tus::${key.targetPrefix}`),
  );
  const pushes = await pending.withPrefix(key.targetPrefix);
  const urls = [...stored.flatMap((u) => (u.uploadUrl ? [u.uploadUrl] : [])), ...pushes.map(([, url]) => url)];
  return {
    urls: [...new Set(urls)],
    storageKeys: stored.map((u) => u.urlStorageKey),
    pendingKeys: pushes.map(([k]) => k),
  };
}

/**
 * --restart: end the uploads this CLI started for the target (tus termination), then forget
 * them, so the gateway lets the image take a new upload. An upload the gateway no longer has
 * is only forgotten; one it will not end stops the run, still remembered. How many it ended.
 */
export async function terminateHeld(
  held: HeldUploads,
  stateFile: string,
  pending: PendingPushes,
  tokens: TokenSource,
  note: (line: string) => void,
): Promise<number> {
  if (!held.urls.length) note('--restart: no earlier upload for this target to terminate');
  let terminated = 0;
  for (const url of held.urls) {
    const gone = await terminate(url, tokens);
    if (!gone) terminated++;
    note(gone ? `--restart: upload ${url} was already gone` : `--restart: terminated upload ${url}`);
  }
  const storage = urlStorage(stateFile);
  for (const k of held.storageKeys) await storage.removeUpload(k);
  await pending.delete(...held.pendingKeys);
  return terminated;
}

/** true: the gateway no longer had it. */
async function terminate(url: string, tokens: TokenSource): Promise<boolean> {
  for (let renewed = false; ; renewed = true) {
    let res;
    try {
      res = await request(url, {
        method: 'DELETE',
        headers: { 'tus-resumable': '1.0.0', 'x-auth-token': await tokens.get() },
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      throw new UploadRefused(`--restart: cannot reach the gateway to terminate ${url}: ${(err as Error).message}`);
    }
    const text = await res.body.text().catch(() => '');
    if (res.statusCode === 204) return false;
    if (res.statusCode === 404 || res.statusCode === 410) return true;
    const message = errorMessage(text) ?? `HTTP ${res.statusCode}`;
    if (res.statusCode === 401) {
      if (!renewed && tokens.renew()) continue;
      throw new AuthError(`the gateway refused the token: ${message}`);
    }
    throw new UploadRefused(`--restart: the gateway did not terminate ${url} (${res.statusCode}): ${message}`);
  }
}
