import {
  ImageFormatMissingError,
  ImageNotQueuedError,
  NotFoundError,
  TokenMissingError,
  TokenRejectedError,
} from '../errors.js';
import type { GlanceClient } from '../glance/client.js';
import type { EndpointResolver } from '../glance/endpoint.js';
import type { Image } from '../glance/image.js';
import type { Keystone, TokenIdentity } from '../glance/keystone.js';
import { asCreateError, asRequestError } from './glance-errors.js';
import type { Reservations } from './reservations.js';
import { parseImageRequest } from './upload-metadata.js';

export interface PreflightDeps {
  glance: GlanceClient;
  keystone: Keystone;
  endpoints: EndpointResolver;
  reservations: Reservations;
}

export interface Admitted {
  imageId: string;
  projectId: string;
  userId: string;
  createdImage: boolean;
  glanceUrl: string;
  diskFormat: string;
  /** When the caller's token expires (ms). */
  expiresAt: number;
}

/**
 * The creation checks, cheapest first, so that nothing is stored, and no image is created,
 * for a request that will be refused. An admitted upload holds a storage reservation under its id.
 */
export class Preflight {
  constructor(private readonly deps: PreflightDeps) {}

  async admit(
    uploadId: string,
    token: string | null,
    metadata: Record<string, string | null> | undefined,
    size: number,
  ): Promise<Admitted> {
    if (!token) throw new TokenMissingError('X-Auth-Token is required');
    const request = parseImageRequest(metadata);
    const identity = await identify(this.deps.keystone, token);
    const { projectId, userId, expiresAt } = identity;
    await this.deps.reservations.claim(uploadId, projectId, size);
    try {
      const endpoint = this.deps.endpoints.resolve(identity);
      const auth = { endpoint, token };
      if (request.kind === 'existing') {
        const image = await this.deps.glance.getImage(auth, request.imageId).catch((err: unknown) => {
          throw asRequestError(err, 'image');
        });
        // Glance shows community and shared images to other projects; only the owner uploads.
        if (image.owner !== projectId) throw new NotFoundError('image not found');
        return { imageId: image.id, projectId, userId, createdImage: false, glanceUrl: endpoint, diskFormat: usableFormat(image), expiresAt };
      }
      const image = await this.deps.glance.createImage(auth, request.image).catch((err: unknown) => {
        throw asCreateError(err);
      });
      return { imageId: image.id, projectId, userId, createdImage: true, glanceUrl: endpoint, diskFormat: usableFormat(image), expiresAt };
    } catch (err) {
      this.deps.reservations.release(uploadId);
      throw asRequestError(err, 'image');
    }
  }
}

/** The token's identity, which must name a project: images belong to projects. */
export async function identify(keystone: Keystone, token: string, fresh = false): Promise<TokenIdentity & { projectId: string }> {
  const identity = await keystone.identify(token, fresh).catch((err: unknown) => {
    throw asRequestError(err, 'token');
  });
  if (!identity.projectId) throw new TokenRejectedError('the token is not scoped to a project', 401);
  return identity as TokenIdentity & { projectId: string };
}

function usableFormat(image: Image): string {
  if (image.status !== 'queued') throw new ImageNotQueuedError(`image ${image.id} is ${image.status}, not queued`);
  if (!image.disk_format || !image.container_format) {
    throw new ImageFormatMissingError(`image ${image.id} has no disk_format or container_format`);
  }
  return image.disk_format;
}
