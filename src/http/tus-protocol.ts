import type { RequestHandler } from 'express';
import { ContentTypeError, InvalidHeaderError, TusVersionError } from '../errors.js';
import { sendError } from './errors.js';

/**
 * The protocol answers tus clients expect (tus 1.0.0 spec, tusd) where @tus/server differs:
 * 412 for an unsupported version, 400 for a missing offset, 415 for a PATCH body of the wrong type.
 */
export const tusProtocol: RequestHandler = (req, res, next) => {
  if (req.method === 'OPTIONS') return next();
  const version = req.get('tus-resumable');
  if (version !== undefined && version !== '1.0.0') {
    res.set('Tus-Version', '1.0.0');
    return sendError(res, new TusVersionError(`Tus-Resumable ${version} is not supported; use 1.0.0`));
  }
  if (req.method === 'PATCH' && version !== undefined) {
    if (req.get('upload-offset') === undefined) return sendError(res, new InvalidHeaderError('Upload-Offset is required'));
    if (req.get('content-type') !== 'application/offset+octet-stream') {
      return sendError(res, new ContentTypeError('a PATCH body must be application/offset+octet-stream'));
    }
  }
  next();
};
