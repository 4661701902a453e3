/**
 * Text from Glance, Keystone or a proxy between them, made safe to log, store and serve: such
 * services may echo the caller's token in an error message.
 */

const REDACTED = '[redacted]';

/** A header name that carries a credential: whatever follows it is dropped. */
const SECRET_NAME = /(?:HTTP_)?X[-_](?:Auth|Subject|Service)[-_]Token|Authorization\s*[:=]|\bBearer\s/i;

/** Dashed UUIDs (image, project ids) stay readable: they are split off before runs are judged. */
const UUID = /(?<![0-9A-Za-z])([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![0-9A-Za-z])/i;

/** JWTs: three base64url parts, the first a JSON object (`{"` encodes as `eyJ`). */
const JWT = /eyJ[\w-]*\.[\w-]+\.[\w-]*/g;

/** Runs of base64, base64url or hex characters: Fernet tokens, UUID tokens without dashes, keys. */
const RUN = /[A-Za-z0-9+/_-]+=*/g;

/** A run this long is a secret whatever it holds; a shorter one only if it mixes letters and digits. */
const ALWAYS = 32;
const MIXED = 20;

function tokenLike(run: string): boolean {
  if (run.length >= ALWAYS) return true;
  return run.length >= MIXED && /\d/.test(run) && /[A-Za-z]/.test(run);
}

/** `text` with token-like runs replaced by `[redacted]`, cut to `max` characters. */
export function redact(text: string, max = 300): string {
  const named = SECRET_NAME.exec(text);
  const head = named ? `${text.slice(0, named.index + named[0].length).trimEnd()} ${REDACTED}` : text;
  const safe = head
    .split(UUID)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(JWT, REDACTED).replace(RUN, (run) => (tokenLike(run) ? REDACTED : run))))
    .join('');
  return safe.slice(0, max);
}
