import { request } from 'undici';
import type { UploadStatus } from '../ingest/uploads.js';
import type { TokenSource } from './auth.js';
import { errorMessage } from './gateway-error.js';
import type { Reporter } from './progress.js';

/**
 * An upload a previous run sent whole: the URL to follow, or undefined when the gateway no
 * longer has it (then the file is uploaded again). A failed push is started again.
 */
export async function resumePending(uploadUrl: string | undefined, tokens: TokenSource, out: Reporter): Promise<string | undefined> {
  if (!uploadUrl) return undefined;
  const headers = { 'x-auth-token': await tokens.get() };
  let status: UploadStatus;
  try {
    const res = await request(`${uploadUrl}/status`, { headers, headersTimeout: 30_000, bodyTimeout: 30_000 });
    if (res.statusCode === 404) {
      await res.body.dump();
      return undefined;
    }
    if (res.statusCode !== 200) return uploadUrl; // let the follow retry or report it
    status = (await res.body.json()) as UploadStatus;
  } catch {
    return uploadUrl; // gateway unreachable: the follow retries
  }
  out.note(`upload ${uploadUrl} already complete; following its push (${status.state})`);
  if (status.state === 'failed') {
    out.note(`the last push failed (${status.error?.message ?? 'unknown error'}); starting it again`);
    const res = await request(`${uploadUrl}/push`, { method: 'POST', headers, headersTimeout: 30_000 });
    const text = await res.body.text();
    if (res.statusCode !== 202) out.note(`the gateway did not restart the push (${res.statusCode}): ${errorMessage(text) ?? text}`);
  }
  return uploadUrl;
}
