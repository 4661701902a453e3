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
 * The tus endpoint. Requests at an existing upload pass the access check first
 * (its token must see the image); creation runs its pre-flight inside tus's hook.
 */
export function tusRoutes(tus: Server, uploads: Uploads, mount: string): Router {
  const router = Router();

  const handle = async (req: Request, res: ExpressResponse) => {
    let response = await tus.handleWeb(new TusRequest({ req, res }));
    if (response.status >= 400) response = await asJsonError(response);
    if (req.method === 'POST' && response.status === 201) {
      const id = response.headers.get('location')?.split('/').pop();
      const record = id ? await uploads.record(id) : undefined;
      if (record) response.headers.set('Glance-Image-Id', record.imageId);
    }
    await sendNodeResponse(res, response);
  };

  router.all([mount, `${mount}/`], tusProtocol, handle);
  router.all(`${mount}/:id`, tusProtocol, async (req, res) => {
    const id = req.params.id;
    if (req.method !== 'OPTIONS') {
      if (req.method === 'GET') return void res.status(405).set('Allow', 'HEAD, PATCH, DELETE, OPTIONS').json({
        error: { code: 'method_not_allowed', message: 'uploads are not downloadable; see /files/{id}/status' },
      });
      if (!isUploadId(id)) return sendError(res, new NotFoundError('upload not found'));
      try {
        await uploads.authorize(id, tokenOf(req), 'push');
      } catch (err) {
        return sendError(res, err);
      }
    }
    await handle(req, res);
  });
  return router;
}

