import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, request, type Dispatcher } from 'undici';
import { GlanceClientError, GlanceHttpError, GlanceNetworkError } from './errors.js';
import { redact } from './redact.js';
import type { GlanceAuth, Image, NewImage } from './image.js';
import { emptyOrThrow, jsonOrThrow } from './response.js';
import { closeDispatcher } from './dispatcher.js';

export interface GlanceClientOptions {
  /** How long Glance may take to answer once the whole image body is sent (it stores and hashes it first). */
  uploadAnswerTimeoutMs?: number;
  dispatcher?: Dispatcher;
}

/** Glance v2 over undici. Knows images and tokens; nothing of tus or routing. */
export class GlanceClient {
  readonly #dispatcher: Dispatcher;
  readonly #uploadAnswerTimeoutMs: number;

  constructor(options: GlanceClientOptions = {}) {
    this.#dispatcher =
      options.dispatcher ?? new Agent({ connect: { timeout: 10_000 }, keepAliveTimeout: 4_000, connections: 64 });
    this.#uploadAnswerTimeoutMs = options.uploadAnswerTimeoutMs ?? 15 * 60_000;
  }

  getImage(auth: GlanceAuth, imageId: string, signal?: AbortSignal): Promise<Image> {
    return this.#call(async () => {
      const res = await request(`${auth.endpoint}/v2/images/${encodeURIComponent(imageId)}`, {
        dispatcher: this.#dispatcher,
        headers: headers(auth.token),
        signal,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      return jsonOrThrow<Image>(res);
    });
  }

  createImage(auth: GlanceAuth, image: NewImage): Promise<Image> {
    return this.#call(async () => {
      const res = await request(`${auth.endpoint}/v2/images`, {
        method: 'POST',
        dispatcher: this.#dispatcher,
        headers: { ...headers(auth.token), 'content-type': 'application/json' },
        body: JSON.stringify(image),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      return jsonOrThrow<Image>(res);
    });
  }

  /** `DELETE /v2/images/{id}`; an image already gone counts as deleted. */
  deleteImage(auth: GlanceAuth, imageId: string): Promise<void> {
    return this.#call(async () => {
      const res = await request(`${auth.endpoint}/v2/images/${encodeURIComponent(imageId)}`, {
        method: 'DELETE',
        dispatcher: this.#dispatcher,
        headers: headers(auth.token),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      if (res.statusCode === 404) return void (await res.body.dump());
      await emptyOrThrow(res);
    });
  }

  /** `PUT /v2/images/{id}/file`, streaming `body` (exactly `size` bytes); resolves on Glance's 204. */
  uploadData(auth: GlanceAuth, imageId: string, body: Readable, size: number, signal?: AbortSignal): Promise<void> {
    return this.#call(async () => {
      const res = await request(`${auth.endpoint}/v2/images/${encodeURIComponent(imageId)}/file`, {
        method: 'PUT',
        dispatcher: this.#dispatcher,
        headers: {
          ...headers(auth.token),
          'content-type': 'application/octet-stream',
          'content-length': String(size),
          'x-openstack-image-size': String(size),
        },
        body,
        signal,
        headersTimeout: this.#uploadAnswerTimeoutMs,
        bodyTimeout: 60_000,
      });
      await emptyOrThrow(res);
    });
  }

  /** Readiness: a URL that needs no token (a version document) answers without a server error. */
  ping(url: string): Promise<void> {
    return this.#call(async () => {
      const res = await request(url, { dispatcher: this.#dispatcher, headersTimeout: 5_000, bodyTimeout: 5_000 });
      await res.body.dump();
      if (res.statusCode >= 500) throw new GlanceHttpError(res.statusCode, `${url} answered ${res.statusCode}`);
    });
  }

  close(): Promise<void> {
    return closeDispatcher(this.#dispatcher);
  }

  /** Everything that is not an HTTP answer (refused, reset, timeouts) becomes a GlanceNetworkError. */
  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof GlanceClientError) throw err;
      if (err instanceof Error && err.name === 'AbortError') throw err;
      const reason = err instanceof undiciErrors.UndiciError || err instanceof Error ? err.message : String(err);
      const code = (err as { code?: string }).code;
      // No `cause`: a logged error would carry the unredacted original text along.
      throw new GlanceNetworkError(redact(code ? `${code}: ${reason}` : reason));
    }
  }
}

function headers(token: string): Record<string, string> {
  return { 'x-auth-token': token, accept: 'application/json' };
}
