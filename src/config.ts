import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { Secret } from './secret.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const int = (min: number) => z.coerce.number().int().min(min);
const url = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));
const blankIsUnset = (v: unknown) => (v === '' ? undefined : v);

/** The environment, as documented in the README's configuration table. */
const schema = z.object({
  PORT: int(0).max(65535).default(1080),
  HOST: z.string().min(1).default('0.0.0.0'),
  STORAGE_DIR: z.string().min(1).default('./storage'),
  GLANCE_URL: z.preprocess(blankIsUnset, url.optional()),
  OS_AUTH_URL: z.preprocess(blankIsUnset, url.optional()),
  OS_INTERFACE: z.enum(['public', 'internal', 'admin']).default('public'),
  OS_REGION_NAME: z.preprocess(blankIsUnset, z.string().optional()),
  REDIS_URL: z.preprocess(blankIsUnset, z.url({ protocol: /^rediss?$/ }).optional()),
  SERVICE_USERNAME: z.preprocess(blankIsUnset, z.string().optional()),
  SERVICE_PASSWORD: z.preprocess(blankIsUnset, z.string().optional()),
  SERVICE_PASSWORD_FILE: z.preprocess(blankIsUnset, z.string().optional()),
  SERVICE_USER_DOMAIN_NAME: z.string().min(1).default('Default'),
  MAX_UPLOAD_SIZE: int(1).default(137438953472),
  PUSH_CONCURRENCY: int(1).max(64).default(2),
  PUSH_MAX_ATTEMPTS: int(1).default(10),
  PUSH_RETRY_BASE_MS: int(1).default(2000),
  PUSH_RETRY_MAX_MS: int(1).default(300000),
  PUSH_STREAMING: z.enum(['0', '1']).default('1').transform((v) => v === '1'),
  PUSH_STREAM_STALL_MS: int(1000).default(60000),
  PUSH_STREAM_MIN_RATE: int(0).default(1048576),
  PROJECT_MAX_UNFINISHED_UPLOADS: int(1).default(100),
  PROJECT_MAX_UNFINISHED_BYTES: int(1).default(549755813888),
  RESERVATION_IDLE_MS: int(1000).default(3600000),
  UPLOAD_EXPIRY_HOURS: z.coerce.number().min(0).default(72),
  SOCKET_IDLE_TIMEOUT_MS: int(1000).default(120000),
  SHUTDOWN_GRACE_MS: int(0).default(10000),
  ALLOWED_ORIGINS: z.preprocess(
    blankIsUnset,
    z
      .string()
      .transform((s) => s.split(',').map((o) => o.trim()).filter(Boolean))
      .optional(),
  ),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  UI: z.enum(['0', '1']).default('1').transform((v) => v === '1'),
});

export type Env = z.input<typeof schema>;

export interface Config {
  port: number;
  host: string;
  storageDir: string;
  /** Static Glance endpoint, or undefined to take it from each caller's Keystone catalog. */
  glanceUrl: string | undefined;
  /** Keystone v3: every token is validated there, to learn the project it acts for. */
  keystone: { authUrl: string; interface: 'public' | 'internal' | 'admin'; region: string | undefined };
  /** Shared state for several instances (records, locks, the push queue, events); unset: all local. */
  redisUrl: string | undefined;
  /** The gateway's own Keystone user, trustee of the uploads' trusts; unset: pushes need the client's token. */
  service: { name: string; domainName: string; password: Secret } | undefined;
  maxUploadSize: number;
  /** What one project may hold here, and how long an idle upload keeps the space it has not used. */
  limits: { uploadsPerProject: number; bytesPerProject: number; idleMs: number };
  push: {
    concurrency: number;
    maxAttempts: number;
    retryBaseMs: number;
    retryMaxMs: number;
    /** `minRate`: bytes a second the client must send over each `stallMs` window to keep streaming. */
    streaming: { enabled: boolean; stallMs: number; minRate: number };
  };
  uploadExpiryMs: number;
  socketIdleTimeoutMs: number;
  shutdownGraceMs: number;
  allowedOrigins: string[] | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  /** Serve the browser upload page at `/`. */
  ui: boolean;
}

export class ConfigError extends Error {}

const DEFAULT_GLANCE_URL = 'http://127.0.0.1:9292';
const DEFAULT_AUTH_URL = 'http://127.0.0.1:5000/v3';

/** Validate the environment; a bad value throws one line that names the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const known = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k]]));
  const parsed = schema.safeParse(known);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    const shown = name.includes('PASSWORD') || name === 'REDIS_URL' ? '[redacted]' : JSON.stringify(env[name] ?? '');
    throw new ConfigError(`invalid ${name}=${shown}: ${issue.message}`);
  }
  const e = parsed.data;
  const useCatalog = e.OS_AUTH_URL !== undefined && e.GLANCE_URL === undefined;
  return {
    port: e.PORT,
    host: e.HOST,
    storageDir: path.resolve(e.STORAGE_DIR),
    glanceUrl: useCatalog ? undefined : (e.GLANCE_URL ?? DEFAULT_GLANCE_URL),
    keystone: { authUrl: e.OS_AUTH_URL ?? DEFAULT_AUTH_URL, interface: e.OS_INTERFACE, region: e.OS_REGION_NAME },
    service: serviceUser(e),
    redisUrl: e.REDIS_URL,
    maxUploadSize: e.MAX_UPLOAD_SIZE,
    limits: {
      uploadsPerProject: e.PROJECT_MAX_UNFINISHED_UPLOADS,
      bytesPerProject: e.PROJECT_MAX_UNFINISHED_BYTES,
      idleMs: e.RESERVATION_IDLE_MS,
    },
    push: {
      concurrency: e.PUSH_CONCURRENCY,
      maxAttempts: e.PUSH_MAX_ATTEMPTS,
      retryBaseMs: e.PUSH_RETRY_BASE_MS,
      retryMaxMs: e.PUSH_RETRY_MAX_MS,
      streaming: { enabled: e.PUSH_STREAMING, stallMs: e.PUSH_STREAM_STALL_MS, minRate: e.PUSH_STREAM_MIN_RATE },
    },
    uploadExpiryMs: e.UPLOAD_EXPIRY_HOURS * 3600_000,
    socketIdleTimeoutMs: e.SOCKET_IDLE_TIMEOUT_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    allowedOrigins: e.ALLOWED_ORIGINS,
    logLevel: e.LOG_LEVEL,
    ui: e.UI,
  };
}

/** The service user, if configured: a name needs exactly one of a password or a password file. */
function serviceUser(e: z.output<typeof schema>): Config['service'] {
  const { SERVICE_USERNAME: name, SERVICE_PASSWORD: password, SERVICE_PASSWORD_FILE: file } = e;
  if (name === undefined) {
    if (password !== undefined || file !== undefined) throw new ConfigError('invalid SERVICE_USERNAME="": required with a service password');
    return undefined;
  }
  if (password !== undefined && file !== undefined) {
    throw new ConfigError('invalid SERVICE_PASSWORD_FILE: set SERVICE_PASSWORD or SERVICE_PASSWORD_FILE, not both');
  }
  if (password !== undefined) return { name, domainName: e.SERVICE_USER_DOMAIN_NAME, password: new Secret(password) };
  if (file === undefined) throw new ConfigError('invalid SERVICE_PASSWORD="": required with SERVICE_USERNAME (or SERVICE_PASSWORD_FILE)');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`invalid SERVICE_PASSWORD_FILE=${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (!secret) throw new ConfigError(`invalid SERVICE_PASSWORD_FILE=${JSON.stringify(file)}: the file is empty`);
  return { name, domainName: e.SERVICE_USER_DOMAIN_NAME, password: new Secret(secret) };
}
