import {
  ImageFormatMissingError,
  ImageNotQueuedError,
  InsufficientStorageError,
  TokenMissingError,
} from '../errors.js';
import type { GlanceClient } from '../glance/client.js';
import type { EndpointResolver } from '../glance/endpoint.js';
import type { Image } from '../glance/image.js';
import { asRequestError } from './glance-errors.js';
import { parseImageRequest } from './upload-metadata.js';

export interface PreflightDeps {
  glance: GlanceClient;
  endpoints: EndpointResolver;
  /** Free bytes in storage minus what uploads in progress still need. */
  spareBytes(): Promise<number>;
}

export interface Admitted {
  imageId: string;
  glanceUrl: string;
  diskFormat: string;
}

/**
 * The creation checks of the contract, cheapest first, so that nothing is stored,
 * and no image is created, for a request that will be refused.
 */
export class Preflight {
  constructor(private readonly deps: PreflightDeps) {}

  async admit(token: string | null, metadata: Record<string, string | null> | undefined, size: number): Promise<Admitted> {
    if (!token) throw new TokenMissingError('X-Auth-Token is required');
    const request = parseImageRequest(metadata);
    const spare = await this.deps.spareBytes();
    if (size > spare) {
      throw new InsufficientStorageError(`not enough storage: ${size} bytes declared, ${Math.max(0, spare)} available`);
    }

    try {
      const endpoint = await this.deps.endpoints.resolve(token);
      const auth = { endpoint, token };
      const image =
        request.kind === 'existing'
          ? await this.deps.glance.getImage(auth, request.imageId)
          : await this.deps.glance.createImage(auth, request.image);
      return { imageId: image.id, glanceUrl: endpoint, diskFormat: usableFormat(image) };
    } catch (err) {
      throw asRequestError(err, 'image');
    }
  }
}

function usableFormat(image: Image): string {
  if (image.status !== 'queued') throw new ImageNotQueuedError(`image ${image.id} is ${image.status}, not queued`);
  if (!image.disk_format || !image.container_format) {
    throw new ImageFormatMissingError(`image ${image.id} has no disk_format or container_format`);
  }
  return image.disk_format;
}
