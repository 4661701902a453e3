import fs from 'node:fs';
import * as tus from 'tus-js-client';
import { AuthError, type TokenSource } from './auth.js';
import { errorCode, errorMessage } from './gateway-error.js';

// The node build exports FileUrlStorage; the package's typings (shared with the browser) do not declare it.
type UrlStorage = NonNullable<tus.UploadOptions['urlStorage']>;
const { FileUrlStorage } = tus as unknown as { FileUrlStorage: new (file: string) => UrlStorage };

/** tus-js-client's state file, read and written under its own lock. */
export const urlStorage = (stateFile: string): UrlStorage => new FileUrlStorage(stateFile);

/** The gateway refused the upload for good (content, metadata, image state): exit 1. */
export class UploadRefused extends Error {
  /** The gateway's error code (`upload_exists`, ...), when it gave one. */
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

export interface UploadOptions {
  file: string;
  endpoint: string;
  metadata: Record<string, string>;
  tokens: TokenSource;
  stateFile: string;
  /** The resume key: which stored upload URL this file may continue (see resume-key.ts). */
  fingerprint: string;
  chunkSize: number;
  retry: boolean;
  onProgress(sent: number, total: number): void;
  onNote(line: string): void;
  /** Kept so a signal handler can stop the upload cleanly. */
  onStarted?(upload: tus.Upload): void;
}

export interface UploadResult {
  uploadUrl: string;
  /** Only known when this run created the upload. */
  imageId: string | undefined;
  /** Glance-Upload-State of the last answer (usually queued). */
  state: string | undefined;
}

// Ramp up, then every 30 s; the count starts over whenever bytes get through, so this
// only runs out after days of a gateway that takes nothing.
const RETRY_FOREVER = [0, 1000, 3000, 5000, 10_000, 20_000, ...Array<number>(10_000).fill(30_000)];

export function uploadFile(opts: UploadOptions): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    let imageId: string | undefined;
    let renewedAt = -1;
    let offset = 0;
    const upload = new tus.Upload(fs.createReadStream(opts.file), {
      endpoint: opts.endpoint,
      metadata: opts.metadata,
      chunkSize: opts.chunkSize,
      urlStorage: urlStorage(opts.stateFile),
      // Not tus-js-client's path-size-mtime-endpoint: that resumed another image's upload, or a replaced file.
      fingerprint: async () => opts.fingerprint,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      retryDelays: opts.retry ? RETRY_FOREVER : null,
      // Fetched per request, so a renewed token reaches the next one; never put in options.headers.
      onBeforeRequest: async (req) => req.setHeader('X-Auth-Token', await opts.tokens.get()),
      onAfterResponse: (req, res) => {
        const method = req.getMethod();
        if (method === 'POST' && res.getStatus() === 201) imageId = res.getHeader('Glance-Image-Id') ?? undefined;
        if (method === 'HEAD' && res.getStatus() === 200) {
          offset = Number(res.getHeader('Upload-Offset') ?? 0);
          opts.onNote(`resuming ${upload.url ?? 'upload'} at byte ${offset}`);
        }
      },
      onShouldRetry: (err, attempt) => {
        const status = err.originalResponse?.getStatus() ?? 0;
        const method = err.originalRequest?.getMethod();
        // An expired token is renewed once per offset; a fixed token cannot be, so 401 is final.
        if (status === 401) {
          if (renewedAt === offset || !opts.tokens.renew()) return false;
          renewedAt = offset;
          return true;
        }
        // 409 at creation is a fact about the image (not queued, upload exists), not a race.
        if (status === 409 && method === 'POST') return false;
        const transient = status === 0 || status >= 500 || status === 423 || status === 409;
        if (transient && attempt > 0) opts.onNote(`upload: ${reason(err)}; retrying`);
        return transient;
      },
      onProgress: (sent, total) => {
        offset = sent;
        opts.onProgress(sent, total);
      },
      onError: (err) => reject(asCliError(err)),
      onSuccess: ({ lastResponse }) => {
        resolve({ uploadUrl: upload.url!, imageId, state: lastResponse.getHeader('Glance-Upload-State') ?? undefined });
      },
    });
    opts.onStarted?.(upload);
    upload
      .findPreviousUploads()
      .then((previous) => {
        // The newest entry: an older one may point at an upload the gateway already dropped.
        const latest = previous.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime))[0];
        if (latest) upload.resumeFromPreviousUpload(latest);
        upload.start();
      })
      .catch((err: unknown) => reject(err));
  });
}

function reason(err: tus.DetailedError | Error): string {
  const res = 'originalResponse' in err ? err.originalResponse : null;
  if (!res) return ('causingError' in err && err.causingError?.message) || 'network error';
  return `${res.getStatus()} ${errorMessage(res.getBody()) ?? ''}`.trim();
}

/** tus-js-client's messages carry the whole request; show the gateway's own message instead. */
function asCliError(err: tus.DetailedError | Error): Error {
  const res = 'originalResponse' in err ? err.originalResponse : null;
  if (!res) return new UploadRefused(`upload failed: ${reason(err)}`);
  const message = errorMessage(res.getBody()) ?? res.getBody().slice(0, 200);
  if (res.getStatus() === 401) return new AuthError(`the gateway refused the token: ${message}`);
  return new UploadRefused(`the gateway refused the upload (${res.getStatus()}): ${message}`, errorCode(res.getBody()));
}
