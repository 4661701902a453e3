// Raw tus requests, for cases a well-behaved client never sends.
import { request as httpRequest } from 'node:http';
export const TUS = { 'tus-resumable': '1.0.0' };

export function meta(pairs: Record<string, string>): string {
  return Object.entries(pairs)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
    .join(',');
}

export async function create(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: { error?: { code: string; message: string } } | null; headers: Headers }> {
  const res = await fetch(`${url}/files/`, { method: 'POST', headers: { ...TUS, ...headers } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with the target sent byte for byte as given (fetch would normalise dots, slashes and escapes). */
export function raw(url: string, method: string, target: string, headers: Record<string, string>, body?: Buffer): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path: target, headers: body ? { ...headers, 'content-length': String(body.length) } : headers });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      // An event stream never ends by itself: its first answer is enough.
      if (String(res.headers['content-type']).startsWith('text/event-stream')) {
        res.once('data', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
          res.destroy();
        });
      }
    });
    req.end(body);
  });
}
