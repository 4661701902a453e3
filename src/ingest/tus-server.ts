import { randomBytes } from 'node:crypto';
import { Server } from '@tus/server';
import { EVENTS, type Locker } from '@tus/utils';
import { toHttpError } from '../errors.js';
import type { Logger } from '../logger.js';
import { installDirectPatch } from './direct-patch.js';
import type { Preflight } from './preflight.js';
import type { GuardedStore } from './guarded-store.js';
import type { Uploads } from './uploads.js';

export const TUS_PATH = '/files';

export interface TusServerDeps {
  files: GuardedStore;
  locker: Locker;
  preflight: Preflight;
  uploads: Uploads;
  logger: Logger;
  maxUploadSize: number;
  allowedOrigins: string[] | undefined;
}

/** What the HTTP layer tells tus about a request: the upload it was authorized for, and the one it created. */
export interface Addressed {
  uploadId: string | undefined;
  createdUploadId: string | undefined;
}

/** Gateway headers a browser must be able to read. */
export const EXPOSED_HEADERS = ['Glance-Image-Id', 'Glance-Upload-State'];

/** @tus/server with the gateway's pre-flight at creation and the push hand-off at completion. */
export function createTusServer(deps: TusServerDeps): Server {
  const server = new Server({
    path: TUS_PATH,
    datastore: deps.files,
    locker: deps.locker,
    // The contract says an upload must be strictly smaller than MAX_UPLOAD_SIZE.
    maxSize: deps.maxUploadSize - 1,
    // As the contract shows it (`/files/{id}`); clients resolve it against the URL they used, proxies included.
    relativeLocation: true,
    namingFunction: () => randomBytes(16).toString('hex'),
    allowedOrigins: (origin) => deps.allowedOrigins?.includes(origin) ?? false,
    allowedHeaders: ['X-Auth-Token'],
    exposedHeaders: EXPOSED_HEADERS,
    postReceiveInterval: 250,

    // The id checked by the access check, never one parsed again out of the URL.
    getFileIdFromRequest: (req) => (req as Partial<Addressed>).uploadId,

    async onUploadCreate(req, upload) {
      const token = req.headers.get('x-auth-token');
      const admitted = await deps.preflight.admit(upload.id, token, upload.metadata, upload.size ?? 0);
      await deps.uploads.create(upload.id, admitted, upload.size ?? 0, token!);
      (req as Partial<Addressed>).createdUploadId = upload.id;
      deps.logger.info({ uploadId: upload.id, imageId: admitted.imageId, size: upload.size }, 'upload created');
      // Stored with the upload, so HEAD shows which image it feeds.
      return { metadata: { ...upload.metadata, image_id: admitted.imageId } };
    },

    async onUploadFinish(_req, upload) {
      const state = await deps.uploads.complete(upload.id);
      return { headers: { 'Glance-Upload-State': state } };
    },

    // Errors of our hooks and store; tus's own refusals pass through as they are.
    onResponseError(_req, err) {
      if (isTusError(err)) return undefined;
      const { status, body } = toHttpError(err);
      if (status >= 500) deps.logger.error({ err }, 'request failed');
      return { status_code: status, body: JSON.stringify(body) };
    },
  });

  installDirectPatch(server);
  server.on(EVENTS.POST_RECEIVE, (_req, upload) => deps.uploads.received(upload.id, upload.offset));
  return server;
}

function isTusError(err: unknown): boolean {
  const e = err as { status_code?: unknown; body?: unknown };
  return typeof e.status_code === 'number' && typeof e.body === 'string';
}
