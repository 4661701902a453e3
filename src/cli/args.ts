import { parseArgs } from 'node:util';

/** A bad command line: exit 2 with one line. */
export class UsageError extends Error {}

export const USAGE = `usage: glance-upload FILE [--image-id ID | --name NAME [--disk-format F] [--container-format bare]
                          [--visibility V] [--tags a,b]] [--gateway URL] [--token T] [--chunk-size 64MiB]
                          [--json] [--no-retry] [--restart]`;

export const HELP = `${USAGE}

Uploads FILE through the glance upload gateway (tus), then follows the push to Glance.
Run the same command again after Ctrl-C, a crash or a reboot: it resumes where it stopped.
It resumes only the same file, unchanged, for the same gateway and image (or the same --name
and formats); a changed or replaced file starts a new upload. Before it says the image is
active, it checks the image against the file: Glance's os_hash_value (else its checksum) must
equal the file's own digest.

  --image-id ID         upload into an existing image (status queued)
  --name NAME           create an image; --disk-format is guessed from the file when left out
  --gateway URL         default $GLANCE_GATEWAY_URL, else http://127.0.0.1:1080
  --token T             default $OS_TOKEN, else a token from Keystone ($OS_AUTH_URL with
                        $OS_USERNAME/$OS_PASSWORD/$OS_PROJECT_NAME, or $OS_APPLICATION_CREDENTIAL_ID/_SECRET)
  --chunk-size SIZE     bytes per PATCH request (default 64MiB)
  --json                print {uploadId, imageId, state, checksum, os_hash_value, size, verified} on stdout
  --no-retry            give up on the first network or server error
  --restart             terminate the uploads this client started earlier for the same gateway
                        and image (say, of a file that has changed since), then upload from scratch;
                        needed when the gateway answers that the image already has an upload

Exit status: 0 image active and the same as FILE, 1 upload or push failed or the image differs
from FILE (or could not be checked), 2 usage or authentication error.
Resume state: $GLANCE_UPLOAD_STATE (default ~/.config/glance-upload/uploads.json); it never holds a token.`;

export interface CliArgs {
  file: string;
  target: { kind: 'existing'; imageId: string } | { kind: 'create'; image: NewImageArgs };
  gateway: string | undefined;
  token: string | undefined;
  chunkSize: number;
  json: boolean;
  retry: boolean;
  restart: boolean;
  help: boolean;
}

export interface NewImageArgs {
  name: string;
  /** undefined: guessed from the file's first bytes. */
  diskFormat: string | undefined;
  containerFormat: string;
  visibility: string | undefined;
  tags: string[] | undefined;
}

export const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;

const OPTIONS = {
  'image-id': { type: 'string' },
  name: { type: 'string' },
  'disk-format': { type: 'string' },
  'container-format': { type: 'string' },
  visibility: { type: 'string' },
  tags: { type: 'string' },
  gateway: { type: 'string' },
  token: { type: 'string' },
  'chunk-size': { type: 'string' },
  json: { type: 'boolean' },
  'no-retry': { type: 'boolean' },
  restart: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function parseCliArgs(argv: string[]): CliArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs' messages are long and name internals; keep the first sentence.
    throw new UsageError((err as Error).message.split('. ')[0] ?? 'bad arguments');
  }
  const { values: v, positionals } = parsed;
  const base = {
    gateway: v.gateway,
    token: v.token,
    chunkSize: v['chunk-size'] === undefined ? DEFAULT_CHUNK_SIZE : parseSize(v['chunk-size']),
    json: v.json ?? false,
    retry: !(v['no-retry'] ?? false),
    restart: v.restart ?? false,
    help: v.help ?? false,
  };
  if (base.help) return { ...base, file: '', target: { kind: 'existing', imageId: '' } };

  if (positionals.length !== 1) throw new UsageError(positionals.length ? 'give exactly one FILE' : 'FILE is missing');
  const file = positionals[0]!;
  const imageFlags = ['disk-format', 'container-format', 'visibility', 'tags'] as const;

  if ((v['image-id'] === undefined) === (v.name === undefined)) {
    throw new UsageError('give exactly one of --image-id or --name');
  }
  if (v['image-id'] !== undefined) {
    const extra = imageFlags.find((f) => v[f] !== undefined);
    if (extra) throw new UsageError(`--${extra} goes with --name (an existing image has its own)`);
    return { ...base, file, target: { kind: 'existing', imageId: v['image-id'] } };
  }
  if (!v.name) throw new UsageError('--name is empty');
  const tags = v.tags?.split(',').map((t) => t.trim()).filter(Boolean);
  return {
    ...base,
    file,
    target: {
      kind: 'create',
      image: {
        name: v.name,
        diskFormat: v['disk-format'],
        containerFormat: v['container-format'] ?? 'bare',
        visibility: v.visibility,
        tags,
      },
    },
  };
}

/** "4MiB", "64M", "1g", "1048576": binary units, since chunks are sized against memory and disk. */
export function parseSize(text: string): number {
  const m = /^(\d+)\s*(k|m|g)?(i?b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--chunk-size ${text} is not a size (e.g. 64MiB)`);
  const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const bytes = Number(m[1]) * unit;
  if (bytes < 1) throw new UsageError('--chunk-size must be at least 1 byte');
  return bytes;
}
