import { ERRORS } from '@tus/utils';

/** tus's own refusals, by their text, named after @tus/utils' ERRORS keys (INVALID_OFFSET -> invalid_offset). */
const CODES = new Map(Object.entries(ERRORS).map(([key, e]) => [e.body.trim(), key.toLowerCase().replace(/^err_/, '')]));

/** A stable `error.code` for a plain-text tus answer. */
export function tusErrorCode(status: number, text: string): string {
  const known = CODES.get(text);
  if (known) return known;
  if (status === 412) return 'tus_resumable_required';
  if (status === 404) return 'not_found';
  // The header validator says "Invalid upload-length upload-offset".
  const invalid = /^Invalid ([a-z-]+(?: [a-z-]+)*)$/i.exec(text);
  if (invalid) return `invalid_${invalid[1]!.toLowerCase().split(' ')[0]!.replace(/-/g, '_')}`;
  return status >= 500 ? 'internal' : 'tus_error';
}

/** Every error leaves the gateway in the contract's JSON shape, tus's plain-text ones included. */
export async function asJsonError(response: Response): Promise<Response> {
  const text = (await response.text()).trim();
  let body = text;
  try {
    if (!(JSON.parse(text) as { error?: unknown }).error) throw new Error('not ours');
  } catch {
    body = JSON.stringify({ error: { code: tusErrorCode(response.status, text), message: text || `HTTP ${response.status}` } });
  }
  const headers = new Headers(response.headers);
  headers.set('Content-Type', 'application/json; charset=utf-8');
  headers.set('Content-Length', String(Buffer.byteLength(body)));
  return new Response(body, { status: response.status, headers });
}
