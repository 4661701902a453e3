import { ERRORS } from '@tus/utils';

/** tus's own refusals (by @tus/utils' ERRORS key), in the vocabulary of the gateway's own codes. */
const BY_KEY: Record<keyof typeof ERRORS, string> = {
  MISSING_OFFSET: 'invalid_header',
  ABORTED: 'aborted',
  INVALID_TERMINATION: 'invalid_termination',
  ERR_LOCK_TIMEOUT: 'lock_timeout',
  INVALID_CONTENT_TYPE: 'content_type',
  FILE_NOT_FOUND: 'not_found',
  INVALID_OFFSET: 'offset_mismatch',
  FILE_NO_LONGER_EXISTS: 'gone',
  ERR_SIZE_EXCEEDED: 'size_exceeded',
  ERR_MAX_SIZE_EXCEEDED: 'too_large',
  INVALID_LENGTH: 'invalid_length',
  INVALID_METADATA: 'invalid_metadata',
  UNKNOWN_ERROR: 'internal',
  FILE_WRITE_ERROR: 'internal',
  UNSUPPORTED_CONCATENATION_EXTENSION: 'unsupported_extension',
  UNSUPPORTED_CREATION_DEFER_LENGTH_EXTENSION: 'unsupported_extension',
  UNSUPPORTED_EXPIRATION_EXTENSION: 'unsupported_extension',
};
const CODES = new Map(Object.entries(ERRORS).map(([key, e]) => [e.body.trim(), BY_KEY[key as keyof typeof ERRORS]]));
/** The header validator's "Invalid upload-length" and friends. */
const INVALID_HEADER: Record<string, string> = {
  'upload-length': 'invalid_length',
  'upload-metadata': 'invalid_metadata',
};

/** A stable `error.code` for a plain-text tus answer. */
export function tusErrorCode(status: number, text: string): string {
  const known = CODES.get(text);
  if (known) return known;
  if (status === 412) return 'tus_resumable_required';
  if (status === 404) return 'not_found';
  // The header validator says "Invalid upload-length upload-offset".
  const invalid = /^Invalid ([a-z-]+)/i.exec(text);
  if (invalid) return INVALID_HEADER[invalid[1]!.toLowerCase()] ?? 'invalid_header';
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
