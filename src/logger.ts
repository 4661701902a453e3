import { pino, type Logger } from 'pino';

export type { Logger };

/** Header names whose values are secrets; never written to a log. */
const SECRET_PATHS = [
  'token',
  '*.token',
  'req.headers["x-auth-token"]',
  'req.headers["x-subject-token"]',
  'req.headers.authorization',
  'headers["x-auth-token"]',
  'headers["x-subject-token"]',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, redact: { paths: SECRET_PATHS, censor: '[redacted]' }, base: { service: 'glance-upload-gateway' } },
    destination,
  );
}
