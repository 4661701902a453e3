import type { IncomingMessage, ServerResponse } from 'node:http';
import { NodeRequest } from 'srvx/node';
import type { Addressed } from '../ingest/tus-server.js';

/**
 * srvx's request for @tus/server, with a body that touches Node's stream only when read.
 * srvx's own `body` starts pulling the socket as soon as it is looked at, and tus looks at it
 * before our PATCH handler reads the Node stream directly (see ingest/direct-patch.ts).
 */
export class TusRequest extends NodeRequest implements Addressed {
  /**
   * The upload this request acts on, as the access check established it: tus takes its id from
   * here and nowhere else, so the id checked is the id acted on.
   */
  readonly uploadId: string | undefined;
  /** Set by the creation hook once an upload exists for this request. */
  createdUploadId: string | undefined;

  constructor(ctx: { req: IncomingMessage; res: ServerResponse }, uploadId?: string) {
    super(ctx);
    this.uploadId = uploadId;
    let body: ReadableStream<Uint8Array> | null | undefined;
    // Replaces srvx's `body` getter for this request only; made on first use, like srvx's.
    Object.defineProperty(this, 'body', {
      get: () => (body ??= this.method === 'GET' || this.method === 'HEAD' ? null : pullOnly(ctx.req)),
    });
  }
}

/** A Web stream over a Node stream that reads a chunk only when asked for one (high-water mark 0). */
function pullOnly(source: IncomingMessage): ReadableStream<Uint8Array> {
  let chunks: AsyncIterator<Buffer> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        chunks ??= source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        const { value, done } = await chunks.next();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      async cancel() {
        await chunks?.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}
