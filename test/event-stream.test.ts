// An event stream outlives a short socket idle timeout: its heartbeat comes more often than the timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meta } from './support/http.js';
import { fakeStack } from './support/stacks.js';

const stack = fakeStack({ SOCKET_IDLE_TIMEOUT_MS: '1500' });

const AUTH = { 'tus-resumable': '1.0.0', 'x-auth-token': 'token-a' };

test('with SOCKET_IDLE_TIMEOUT_MS 1500, an event stream stays open for 5 s on heartbeats, then still reports the upload becoming active', { timeout: 30_000 }, async () => {
  const size = 1000;
  const created = await fetch(`${stack.gw.url}/files/`, {
    method: 'POST',
    headers: { ...AUTH, 'upload-length': String(size), 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }) },
  });
  assert.equal(created.status, 201);
  const upload = new URL(created.headers.get('location')!, stack.gw.url).toString();

  const events = await fetch(`${upload}/events`, { headers: AUTH });
  assert.equal(events.status, 200);
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  /** Read until `done(text)` holds or `ms` passed; false if the stream ended first. */
  const readUntil = async (done: (t: string) => boolean, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (!done(text)) {
      const left = deadline - Date.now();
      if (left <= 0) return true;
      const read = reader.read().catch(() => ({ done: true as const, value: undefined }));
      let timer: NodeJS.Timeout | undefined;
      const next = await Promise.race([read, new Promise<'wait'>((r) => (timer = setTimeout(() => r('wait'), left)))]);
      clearTimeout(timer);
      if (next === 'wait') return true;
      if (next.done) return false;
      text += next.value;
    }
    return true;
  };

  assert.ok(await readUntil(() => false, 5_000), `the stream stayed open for 5 s; it had: ${JSON.stringify(text)}`);
  assert.ok(text.split(': keep-alive').length - 1 >= 3, `heartbeats came: ${JSON.stringify(text)}`);
  assert.match(text, /event: status\ndata: .*"state":"receiving"/);

  const patch = await fetch(upload, {
    method: 'PATCH',
    headers: { ...AUTH, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
    body: Buffer.alloc(size, 1),
  });
  assert.equal(patch.status, 204);
  const active = /event: status\ndata: .*"state":"active"/;
  assert.ok(await readUntil((t) => active.test(t), 10_000), 'the stream was still open');
  assert.match(text, active);
  await reader.cancel();
});
