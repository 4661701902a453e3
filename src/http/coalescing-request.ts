import type { IncomingMessage, ServerResponse } from 'node:http';
import { NodeRequest } from 'srvx/node';

const CHUNK = 512 * 1024;
const QUEUED_CHUNKS = 2;
/** Bytes never wait longer than this for a chunk to fill: a slow client's bytes reach the disk at once. */
const MAX_HOLD_MS = 20;

/**
 * srvx's request, whose body hands @tus/server 512 KiB chunks instead of the socket's 64 KiB:
 * tus turns the Web body back into a Node stream and pays per chunk at every stage after that.
 */
export class CoalescingRequest extends NodeRequest {
  constructor(ctx: { req: IncomingMessage; res: ServerResponse }) {
    super(ctx);
    let body: ReadableStream<Uint8Array> | null | undefined;
    // Replaces srvx's `body` getter for this request only; made on first use, like srvx's.
    Object.defineProperty(this, 'body', {
      get: () => (body ??= this.method === 'GET' || this.method === 'HEAD' ? null : coalesce(ctx.req)),
    });
  }
}

function coalesce(source: IncomingMessage): ReadableStream<Uint8Array> {
  let parts: Buffer[] = [];
  let length = 0;
  let timer: NodeJS.Timeout | undefined;
  const take = (): Buffer => {
    clearTimeout(timer);
    timer = undefined;
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
    parts = [];
    length = 0;
    return out;
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const flush = () => {
          controller.enqueue(take());
          if ((controller.desiredSize ?? 1) <= 0) source.pause();
        };
        source.on('data', (chunk: Buffer) => {
          parts.push(chunk);
          length += chunk.length;
          if (length >= CHUNK) flush();
          else timer ??= setTimeout(flush, MAX_HOLD_MS);
        });
        // End, or a client gone mid-body: either way every byte that arrived goes on to the store
        // (as tus itself ends its stream on an abort); HEAD then tells the client where to resume.
        let ended = false;
        const end = () => {
          if (ended) return;
          ended = true;
          if (length > 0) controller.enqueue(take());
          controller.close();
        };
        source.once('end', end);
        source.once('close', end);
        source.once('error', end);
      },
      pull() {
        source.resume();
      },
      cancel(reason) {
        source.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: QUEUED_CHUNKS },
  );
}
