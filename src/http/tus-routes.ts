import type { ServerResponse } from 'node:http';
import { finished } from 'node:stream';
import type { Server } from '@tus/server';
import { Router, type Request, type Response as ExpressResponse } from 'express';
import { sendNodeResponse } from 'srvx/node';
import { NotFoundError } from '../errors.js';
import type { Uploads } from '../ingest/uploads.js';
import { sendError } from './errors.js';
import { isUploadId, tokenOf } from './request.js';
import { asJsonError } from './tus-errors.js';
import { tusProtocol } from './tus-protocol.js';
import { TusRequest } from './tus-request.js';

/**
 * The tus endpoint. A request at an upload names it in exactly one canonical way and passes the
 * access check first; tus then acts on that same id, handed over, never parsed again.
 * Creation runs its pre-flight inside tus's hook; a creation not answered 201 leaves nothing.
 */
export function tusRoutes(tus: Server, uploads: Uploads, mount: string): Router {
  const router = Router();

  const handle = async (req: Request, res: ExpressResponse, uploadId?: string) => {
    const request = new TusRequest({ req, res }, uploadId);
    let created: string | undefined;
    let kept = false;
    try {
      let response = await tus.handleWeb(request);
      created = request.createdUploadId;
      if (response.status >= 400) response = await asJsonError(response);
      if (created && response.status === 201) {
        const record = await uploads.record(created);
        if (record) response.headers.set('Glance-Image-Id', record.imageId);
      }
      await sendNodeResponse(res, response);
      kept = response.status === 201 && (await delivered(res));
    } finally {
      // The client never learnt the upload's URL (refused, or gone before the answer): nobody resumes it.
      if (created && !kept) await uploads.discard(created);
    }
  };

  // Discovery and creation only: every other verb names an upload, and no upload lives here.
  router.all([mount, `${mount}/`], tusProtocol, async (req, res) => {
    if (req.method !== 'POST' && req.method !== 'OPTIONS') return sendError(res, new NotFoundError('no upload at this URL'));
    await handle(req, res);
  });

  router.all(`${mount}/:id`, tusProtocol, async (req, res) => {
    if (req.method === 'OPTIONS') return handle(req, res);
    if (req.method === 'GET' || req.method === 'POST') {
      return void res.status(405).set('Allow', 'HEAD, PATCH, DELETE, OPTIONS').json({
        error: { code: 'method_not_allowed', message: 'uploads are not downloadable; see /files/{id}/status' },
      });
    }
    const id = canonicalId(req, mount);
    if (!id) return sendError(res, new NotFoundError('upload not found'));
    try {
      await uploads.authorize(id, tokenOf(req), 'push');
    } catch (err) {
      return sendError(res, err);
    }
    await handle(req, res, id);
  });
  return router;
}

/**
 * The upload id of a URL written exactly `{mount}/{id}`: no query, no escapes, no dot segments,
 * no second slash. Any other spelling could be read two ways, so it names no upload.
 */
function canonicalId(req: Request, mount: string): string | undefined {
  const id = req.params.id;
  return isUploadId(id) && req.originalUrl === `${mount}/${id}` ? id : undefined;
}

/** True once the whole answer left for the client; false if the connection died first. */
function delivered(res: ServerResponse): Promise<boolean> {
  if (res.writableFinished) return Promise.resolve(true);
  return new Promise((resolve) => finished(res, (err) => resolve(!err && res.writableFinished)));
}
