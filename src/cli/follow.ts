import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { UploadStatus } from '../ingest/uploads.js';
import { AuthError, type TokenSource } from './auth.js';
import { errorMessage } from './gateway-error.js';

/** The push cannot be followed any further (upload gone, refused): exit 1. */
export class FollowError extends Error {}

class TokenRejected extends AuthError {}

export interface FollowOptions {
  uploadUrl: string;
  tokens: TokenSource;
  retry: boolean;
  onStatus(status: UploadStatus): void;
  onNote(line: string): void;
}

const FINAL = new Set(['active', 'failed']);
// The gateway sends a comment every 15 s: silence for much longer means a dead link.
const IDLE_MS = 60_000;

/** Follow `GET {upload}/events` until the push ends; reconnects on network trouble. */
export async function followPush(opts: FollowOptions): Promise<UploadStatus> {
  let nudged = false;
  let renewed = false;
  let lastState: string | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      for await (const event of sseEvents(`${opts.uploadUrl}/events`, await opts.tokens.get())) {
        attempt = 0;
        renewed = false;
        if (event.event === 'removed') throw new FollowError('the upload was removed from the gateway (expired or deleted)');
        if (event.event !== 'status' && event.event !== 'progress') continue;
        const status = JSON.parse(event.data) as UploadStatus;
        opts.onStatus(status);
        if (FINAL.has(status.state)) return status;
        if (status.state !== lastState) nudged = false;
        lastState = status.state;
        // Our events request only watches; a tus HEAD hands the gateway a token to push with.
        if (status.state === 'awaiting_token' && !nudged) {
          nudged = true;
          await nudge(opts);
        }
      }
    } catch (err) {
      // A push can outlast a token: fetch a fresh one once before giving up.
      if (err instanceof TokenRejected && !renewed && opts.tokens.renew()) {
        renewed = true;
        continue;
      }
      if (err instanceof FollowError || err instanceof AuthError) throw err;
      if (!opts.retry) throw new FollowError(`lost the event stream: ${(err as Error).message}`);
      if (attempt === 0) opts.onNote(`event stream lost (${(err as Error).message}); reconnecting`);
    }
    await sleep(Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)));
  }
}

/** The push waits for a token: send one through a request that counts as the uploader's. */
async function nudge(opts: FollowOptions): Promise<void> {
  // Glance's 401 is the usual cause: a token we can renew is renewed first.
  opts.tokens.renew();
  const res = await request(opts.uploadUrl, {
    method: 'HEAD',
    headers: { 'tus-resumable': '1.0.0', 'x-auth-token': await opts.tokens.get() },
    headersTimeout: 30_000,
  });
  await res.body.dump();
  if (res.statusCode === 401) throw new AuthError('the gateway refused the token; the push waits for a valid one: run again with a fresh token');
}

interface SseEvent {
  event: string;
  data: string;
}

async function* sseEvents(url: string, token: string): AsyncGenerator<SseEvent> {
  const res = await request(url, {
    headers: { accept: 'text/event-stream', 'x-auth-token': token },
    headersTimeout: 30_000,
    bodyTimeout: IDLE_MS,
  });
  if (res.statusCode !== 200) {
    const text = await res.body.text().catch(() => '');
    const message = errorMessage(text) ?? `HTTP ${res.statusCode}`;
    if (res.statusCode === 401) throw new TokenRejected(`the gateway refused the token: ${message}`);
    if (res.statusCode >= 500) throw new Error(`events answered ${res.statusCode}: ${message}`); // retried
    throw new FollowError(`cannot follow the push: ${message}`);
  }
  let buffer = '';
  res.body.setEncoding('utf8'); // a character split across chunks stays whole
  try {
    for await (const chunk of res.body) {
      buffer += chunk as string;
      let end: RegExpExecArray | null;
      while ((end = /\r?\n\r?\n/.exec(buffer))) {
        const event = parseBlock(buffer.slice(0, end.index));
        buffer = buffer.slice(end.index + end[0].length);
        if (event) yield event;
      }
    }
  } finally {
    res.body.destroy(); // leaving the loop early must close the connection
  }
  throw new Error('the gateway closed the event stream');
}

function parseBlock(block: string): SseEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(':')) continue; // keep-alive comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length ? { event, data: data.join('\n') } : undefined;
}
