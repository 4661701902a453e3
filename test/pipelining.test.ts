// Requests pipelined on one keep-alive connection are handled one after the other, in order.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { meta } from './support/http.js';
import { fakeStack } from './support/stacks.js';

const stack = fakeStack();

const HEADERS = 'Host: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nX-Auth-Token: token-a\r\n';

interface Answer {
  status: number;
  headers: Record<string, string>;
}

/** Write all requests in one go on one socket; read the answers in order (`methods` says which have no body). */
function pipelined(port: number, methods: string[], requests: Buffer): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const answers: Answer[] = [];
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      for (;;) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        const status = Number(statusLine!.split(' ')[1]);
        const bodyLength = methods[answers.length] === 'HEAD' || status === 204 ? 0 : Number(headers['content-length'] ?? 0);
        if (data.length < end + 4 + bodyLength) return;
        answers.push({ status, headers });
        data = data.subarray(end + 4 + bodyLength);
        if (answers.length === methods.length) {
          socket.end();
          return resolve(answers);
        }
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${JSON.stringify(answers.map((a) => [a.status, a.headers['upload-offset']]))}`)));
    socket.write(requests);
  });
}

test('a HEAD pipelined right after a PATCH on the same connection reports the offset that PATCH reached', { timeout: 30_000 }, async () => {
  const size = 4000;
  const created = await fetch(`${stack.gw.url}/files/`, {
    method: 'POST',
    headers: { 'tus-resumable': '1.0.0', 'x-auth-token': 'token-a', 'upload-length': String(size), 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }) },
  });
  assert.equal(created.status, 201);
  const path = created.headers.get('location')!;
  const part = 1000; // small: the whole pipeline arrives at once, before the PATCH reads its body
  const patch = (offset: number) =>
    Buffer.concat([
      Buffer.from(`PATCH ${path} HTTP/1.1\r\n${HEADERS}Upload-Offset: ${offset}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: ${part}\r\n\r\n`),
      Buffer.alloc(part, 7),
    ]);
  const head = Buffer.from(`HEAD ${path} HTTP/1.1\r\n${HEADERS}\r\n`);
  // The PATCH's access check takes longer than the HEAD's (as when its token's validation misses a
  // cache): handled side by side, the HEAD would read the offset first.
  const { uploads } = stack.gw.gateway;
  const authorize = uploads.authorize;
  let checks = 0;
  uploads.authorize = async (...args) => {
    if (++checks === 1) await new Promise((r) => setTimeout(r, 300));
    return authorize.apply(uploads, args);
  };
  const answers = await pipelined(
    Number(new URL(stack.gw.url).port),
    ['PATCH', 'HEAD', 'PATCH', 'HEAD'],
    Buffer.concat([patch(0), head, patch(part), head]),
  ).finally(() => (uploads.authorize = authorize));
  assert.deepEqual(
    answers.map((a) => [a.status, a.headers['upload-offset']]),
    [
      [204, String(part)],
      [200, String(part)],
      [204, String(2 * part)],
      [200, String(2 * part)],
    ],
  );
});
