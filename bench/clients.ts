// The clients: one PATCH/PUT of a whole file with undici, 16 MiB PUTs, tus-js-client, curl.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import * as tus from 'tus-js-client';
import { Agent, Client, request } from 'undici';
import { now } from './measure.js';

// No undici time limit: a multi-GiB body is answered only once it is all sent.
const agent = new Agent({ headersTimeout: 0, bodyTimeout: 0 });
const READ_CHUNK = 1024 * 1024; // fewer, larger socket writes: less client CPU on a 2-core box

async function send(method: 'PATCH' | 'PUT', url: string, path: string, headers: Record<string, string>, start = 0, length?: number) {
  const size = length ?? fs.statSync(path).size - start;
  const body = fs.createReadStream(path, { start, end: start + size - 1, highWaterMark: READ_CHUNK });
  const res = await request(url, {
    method,
    dispatcher: agent,
    headers: { ...headers, 'content-length': String(size) },
    body,
  });
  const text = await res.body.text();
  if (res.statusCode !== 204) throw new Error(`${method} ${url}: ${res.statusCode} ${text.slice(0, 300)}`);
  return res.headers;
}

export const tusHeaders = (token?: string): Record<string, string> => ({
  'tus-resumable': '1.0.0',
  ...(token ? { 'x-auth-token': token } : {}),
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** tus creation (no data); the absolute upload URL. */
export async function tusCreate(endpoint: string, size: number, metadata: Record<string, string>, token?: string): Promise<string> {
  const res = await request(endpoint, {
    method: 'POST',
    dispatcher: agent,
    headers: {
      ...tusHeaders(token),
      'upload-length': String(size),
      'upload-metadata': Object.entries(metadata)
        .map(([k, v]) => `${k} ${b64(v)}`)
        .join(','),
    },
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`tus POST ${endpoint}: ${res.statusCode} ${text.slice(0, 300)}`);
  return new URL(String(res.headers.location), endpoint).toString();
}

/** One PATCH of the whole file; the response headers. */
export function tusPatchAll(uploadUrl: string, path: string, token?: string) {
  return send('PATCH', uploadUrl, path, {
    ...tusHeaders(token),
    'upload-offset': '0',
    'content-type': 'application/offset+octet-stream',
  });
}

/** One PUT of the whole file to the sink. */
export async function sinkPut(sinkUrl: string, name: string, path: string): Promise<void> {
  await send('PUT', `${sinkUrl}/${name}`, path, { 'content-type': 'application/octet-stream' });
}

/** The same bytes to the sink as sequential PUTs of `chunk` bytes (it appends). */
export async function sinkPutChunks(sinkUrl: string, name: string, path: string, size: number, chunk: number): Promise<void> {
  for (let at = 0; at < size; at += chunk)
    await send('PUT', `${sinkUrl}/${name}`, path, { 'content-type': 'application/octet-stream' }, at, Math.min(chunk, size - at));
}

export interface TusJsResult {
  url: string;
  lastResponse: tus.HttpResponse;
}

/**
 * A whole upload with tus-js-client, as a Node user writes it. No retries: a failure
 * is counted, not hidden.
 */
export function tusJsUpload(
  endpoint: string,
  path: string,
  chunkSize: number,
  opts: { metadata: Record<string, string>; token?: string },
): Promise<TusJsResult> {
  return new Promise((resolve, reject) => {
    const input = fs.createReadStream(path); // tus-js-client re-opens the path per chunk
    const upload = new tus.Upload(input, {
      endpoint,
      chunkSize,
      metadata: opts.metadata,
      headers: opts.token ? { 'X-Auth-Token': opts.token } : {},
      retryDelays: [],
      storeFingerprintForResuming: false,
      onSuccess: ({ lastResponse }) => {
        input.destroy();
        resolve({ url: upload.url!, lastResponse });
      },
      onError: (err) => {
        input.destroy();
        reject(err);
      },
    });
    upload.start();
  });
}

/** `curl -T` straight into Glance, as an operator would; its wall time in ms. */
export function curlUpload(glanceUrl: string, token: string, imageId: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-T', path];
    args.push('-H', `X-Auth-Token: ${token}`, '-H', 'Content-Type: application/octet-stream');
    args.push(`${glanceUrl}/v2/images/${imageId}/file`);
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      const ms = now() - t0;
      if (code === 0 && out.trim() === '204') resolve(ms);
      else reject(new Error(`curl -T exited ${code}: ${out.trim().slice(0, 300)}`));
    });
  });
}

/** A status-change stream of a gateway upload (`GET /files/{id}/events`). */
export interface Watch {
  /** performance.now() of the first event that shows `state`; rejects on `failed`. */
  until(state: string): Promise<number>;
  close(): void;
}

export async function watchUpload(uploadUrl: string, token: string): Promise<Watch> {
  // Its own connection, destroyed on close: aborting an undici request left the socket
  // open, and the gateway then waits its whole shutdown grace for it.
  const client = new Client(new URL(uploadUrl).origin, { headersTimeout: 0, bodyTimeout: 0 });
  const res = await client.request({ method: 'GET', path: `${new URL(uploadUrl).pathname}/events`, headers: { 'x-auth-token': token } });
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    await client.destroy();
    throw new Error(`events ${uploadUrl}: ${res.statusCode} ${text}`);
  }
  const seen = new Map<string, number>();
  const waiters: Array<() => void> = [];
  let failure: Error | undefined;
  let ended = false;
  void (async () => {
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += chunk.toString();
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (!data) continue;
          const status = JSON.parse(data) as { state?: string; error?: { code: string; message: string } };
          if (status.state && !seen.has(status.state)) seen.set(status.state, now());
          if (status.state === 'failed') failure = new Error(`push failed: ${JSON.stringify(status.error)}`);
          for (const wake of waiters.splice(0)) wake();
        }
      }
    } catch {
      // aborted by close()
    }
    ended = true;
    for (const wake of waiters.splice(0)) wake();
  })();
  return {
    async until(state) {
      for (;;) {
        const at = seen.get(state);
        if (at !== undefined) return at;
        if (failure) throw failure;
        if (ended) throw new Error(`event stream ended before state ${state}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    close: () => void client.destroy(),
  };
}
