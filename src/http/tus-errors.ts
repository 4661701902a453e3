import { TUS_HEADER_CODES, type RequestErrorCode } from '../error-codes.js';
import { httpError, tusRefusalKey, toHttpError, type HttpError } from '../errors.js';

/** How @tus/server's header check words its 400 (`Invalid upload-length upload-offset\n`). */
const INVALID_HEADERS = 'Invalid ';

/**
 * A plain-text answer of @tus/server, as the gateway's JSON error. A refusal tus raised is
 * recognised as its ERRORS entry (its status and body are the entry's own); what tus writes
 * without one is its missing Tus-Resumable (412), its header check (400) and unknown verbs (404).
 */
export function tusAnswer(status: number, text: string): HttpError {
  const raised = { status_code: status, body: text };
  if (tusRefusalKey(raised)) return toHttpError(raised);
  const message = text.trim() || `HTTP ${status}`;
  if (status === 412) return httpError('tus_resumable_required', message);
  if (status === 404) return httpError('not_found', message);
  if (status === 400 && text.startsWith(INVALID_HEADERS)) return httpError(invalidHeaderCode(text), message);
  return status >= 500 ? httpError('internal', message) : httpError('bad_request', message, status);
}

/** The first header tus named that has a code of its own, else `invalid_header`. */
function invalidHeaderCode(text: string): RequestErrorCode {
  const names = text.slice(INVALID_HEADERS.length).trim().toLowerCase().split(' ');
  for (const name of names) {
    const code = TUS_HEADER_CODES[name];
    if (code) return code;
  }
  return 'invalid_header';
}

/** Every error leaves the gateway in the contract's JSON shape, tus's plain-text ones included. */
export async function asJsonError(response: Response): Promise<Response> {
  const text = await response.text();
  let status = response.status;
  let body = text.trim();
  try {
    if (!(JSON.parse(body) as { error?: unknown }).error) throw new Error('not ours');
  } catch {
    const answer = tusAnswer(response.status, text);
    status = answer.status;
    body = JSON.stringify(answer.body);
  }
  const headers = new Headers(response.headers);
  headers.set('Content-Type', 'application/json; charset=utf-8');
  headers.set('Content-Length', String(Buffer.byteLength(body)));
  return new Response(body, { status, headers });
}
