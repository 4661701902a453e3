// A request body that trickles a file out, so that a test can act while a PATCH is in flight.
import fsp from 'node:fs/promises';

export interface Trickle {
  body: ReadableStream<Uint8Array>;
  /** Resolves once at least this many bytes were handed to the request. */
  sent(bytes: number): Promise<void>;
}

export function trickle(file: string, start: number, end: number, chunk: number, delayMs: number): Trickle {
  let sent = 0;
  const waiters: { bytes: number; resolve: () => void }[] = [];
  let position = start;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (position >= end) return controller.close();
      await new Promise((r) => setTimeout(r, delayMs));
      const handle = await fsp.open(file, 'r');
      const buffer = Buffer.alloc(Math.min(chunk, end - position));
      await handle.read(buffer, 0, buffer.length, position);
      await handle.close();
      position += buffer.length;
      sent += buffer.length;
      controller.enqueue(buffer);
      for (const w of waiters.filter((w) => sent >= w.bytes)) w.resolve();
    },
  });
  return {
    body,
    sent: (bytes) => new Promise((resolve) => (sent >= bytes ? resolve() : waiters.push({ bytes, resolve }))),
  };
}

export function patchWith(url: string, token: string, offset: number, length: number, body: ReadableStream<Uint8Array>): Promise<Response> {
  return fetch(url, {
    method: 'PATCH',
    headers: {
      'tus-resumable': '1.0.0',
      'x-auth-token': token,
      'upload-offset': String(offset),
      'content-type': 'application/offset+octet-stream',
      'content-length': String(length),
    },
    body,
    duplex: 'half',
  } as RequestInit);
}
