import type { Request } from 'express';

/** Upload ids are 128 random bits in hex; anything else is answered 404 before touching storage. */
const UPLOAD_ID = /^[0-9a-f]{32}$/;

export function isUploadId(id: unknown): id is string {
  return typeof id === 'string' && UPLOAD_ID.test(id);
}

export function tokenOf(req: Request): string | null {
  const token = req.get('x-auth-token')?.trim();
  return token ? token : null;
}
