import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { ERRORS, EVENTS, type CancellationContext, type DataStore, type Server, type ServerOptions, type Upload } from '@tus/server';

type PatchHandler = Server['handlers']['PATCH'];
type PatchHandlerClass = new (store: DataStore, options: ServerOptions) => PatchHandler;

/**
 * Replace tus's PATCH handler with one that stores the body straight from Node's request.
 * @tus/server turns every body into a Web stream and back (Readable.fromWeb, then a PassThrough),
 * which cost more CPU than storing the bytes. Headers, offsets, locks, hooks and answers stay tus's;
 * only the path of the body changes. Call before adding listeners (tus copies them to its handlers).
 */
export function installDirectPatch(server: Server): void {
  // @tus/server exports only Server: its handler class comes from the instance.
  const Base = server.handlers.PATCH.constructor as PatchHandlerClass;

  class DirectPatchHandler extends Base {
    /** Each request's Node stream, by tus's per-request context. */
    readonly #bodies = new WeakMap<CancellationContext, IncomingMessage>();

    override send(req: Request, context: CancellationContext, headers?: Parameters<PatchHandler['send']>[2]) {
      const node = (req as { runtime?: { node?: { req?: IncomingMessage } } }).runtime?.node?.req;
      if (node) this.#bodies.set(context, node);
      return super.send(req, context, headers);
    }

    protected override async writeToStore(
      web: ReadableStream | null,
      upload: Upload,
      maxBodySize: number,
      context: CancellationContext,
    ): Promise<number> {
      const source = this.#bodies.get(context);
      if (!source) return super.writeToStore(web, upload, maxBodySize, context);
      if (context.signal.aborted) throw ERRORS.ABORTED;

      const interval = this.options.postReceiveInterval ?? 1000;
      const body = new BodyMeter(maxBodySize, every(interval, (bytes) => {
        this.emit(EVENTS.POST_RECEIVE, source, { ...upload, offset: upload.offset + bytes });
      }));
      // The lock is wanted elsewhere, or the client is gone: what arrived is stored, as tus does.
      const stop = () => {
        source.unpipe(body);
        if (!body.writableEnded) body.end();
      };
      context.signal.addEventListener('abort', stop, { once: true });
      source.once('close', stop).once('error', stop);
      source.pipe(body);
      if (source.destroyed) stop(); // gone before we listened: its 'close' will not come again
      try {
        return await this.store.write(body, upload.id, upload.offset);
      } catch (err) {
        throw err instanceof Error && err.name === 'AbortError' ? ERRORS.ABORTED : err;
      } finally {
        context.signal.removeEventListener('abort', stop);
        source.off('close', stop).off('error', stop);
        source.unpipe(body);
      }
    }
  }

  server.handlers.PATCH = new DirectPatchHandler(server.datastore, server.options);
}

/** tus's 413, as its own StreamLimiter raises it. */
class BodyTooLargeError extends Error {
  readonly status_code = ERRORS.ERR_MAX_SIZE_EXCEEDED.status_code;
  readonly body = ERRORS.ERR_MAX_SIZE_EXCEEDED.body;
}

/** Counts the body's bytes, refusing more than `limit`. */
class BodyMeter extends Transform {
  #bytes = 0;

  constructor(
    private readonly limit: number,
    private readonly onBytes: (bytes: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.limit) return callback(new BodyTooLargeError(`body exceeds the ${this.limit} bytes left in the upload`));
    this.onBytes(this.#bytes);
    callback(null, chunk);
  }
}

/** Calls `fn` at most once per `ms`, the first time `ms` after the start (as tus's throttle does). */
function every(ms: number, fn: (value: number) => void): (value: number) => void {
  let last = Date.now();
  return (value) => {
    const now = Date.now();
    if (now - last < ms) return;
    last = now;
    fn(value);
  };
}
