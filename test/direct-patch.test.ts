// A PATCH's body is stored straight from Node's request (src/ingest/direct-patch.ts), which leans
// on internals of @tus/server (its PATCH handler class, `send`, `writeToStore`) and of srvx (the
// request's `runtime.node.req`). Should an upgrade move them, every byte would quietly take tus's
// Web-stream path again: still correct, but the CPU cost the direct path removes comes back.
// These tests notice: spies on tus's PATCH handler class see which path each PATCH takes.
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { type CancellationContext, DataStore, Server, Upload } from '@tus/server';
import { MiB, makeFile } from './support/files.js';
import { tempDir, waitForState } from './support/gateway.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

type Write = (web: ReadableStream | null, upload: Upload, maxBodySize: number, context: CancellationContext) => Promise<number>;
interface PatchHandler {
  send(...args: unknown[]): Promise<unknown>;
  writeToStore: Write;
}

/** Counts every byte it is given, as a store would write them. */
class CountingStore extends DataStore {
  override async write(stream: Readable): Promise<number> {
    let bytes = 0;
    for await (const chunk of stream) bytes += (chunk as Buffer).length;
    return bytes;
  }
}

// @tus/server exports only Server: its PATCH handler class comes from an instance.
const tusPatch = Object.getPrototypeOf(new Server({ path: '/files', datastore: new CountingStore() }).handlers.PATCH) as PatchHandler;
const tusSend = tusPatch.send;
const hadOwnWrite = Object.hasOwn(tusPatch, 'writeToStore');
const tusWrite = tusPatch.writeToStore;

/** The Web-stream body of each call of a subclass's writeToStore (the gateway's direct path). */
const directWrites: (ReadableStream | null)[] = [];
/** Calls of tus's own writeToStore: through `super`, or by a handler that is tus's own. */
let tusWrites = 0;
const spied = new WeakSet<object>();

before(() => {
  tusPatch.writeToStore = function (this: PatchHandler, ...args) {
    tusWrites++;
    return tusWrite.apply(this, args);
  };
  // The handler the gateway installed shows itself here, as its send calls tus's.
  tusPatch.send = function (this: PatchHandler, ...args) {
    const own = Object.getPrototypeOf(this) as PatchHandler;
    if (own !== tusPatch && !spied.has(own) && Object.hasOwn(own, 'writeToStore')) {
      spied.add(own);
      const write = own.writeToStore;
      own.writeToStore = function (this: PatchHandler, web, ...rest) {
        directWrites.push(web);
        return write.call(this, web, ...rest);
      };
    }
    return tusSend.apply(this, args);
  };
});

after(() => {
  tusPatch.send = tusSend;
  if (hadOwnWrite) tusPatch.writeToStore = tusWrite;
  else delete (tusPatch as Partial<PatchHandler>).writeToStore;
});

const stack = fakeStack();

test('the spies see tus own path: its writeToStore reads the body as a Web stream', async () => {
  const handler = new Server({ path: '/files', datastore: new CountingStore() }).handlers.PATCH as unknown as PatchHandler;
  const web = new Blob([Buffer.alloc(1000, 1)]).stream();
  const context: CancellationContext = { signal: new AbortController().signal, abort: () => {}, cancel: () => {} };
  const calls = tusWrites;
  const stored = await handler.writeToStore(web, new Upload({ id: 'x', offset: 0, size: 1000 }), 1000, context);
  assert.equal(stored, 1000);
  assert.equal(tusWrites, calls + 1);
  assert.equal(web.locked, true, 'tus took a reader of the Web stream');
});

test('every PATCH through the gateway is stored from the Node request: tus never reads its Web stream', { timeout: 60_000 }, async () => {
  const size = 3 * MiB + 12345;
  const file = await makeFile(await tempDir('gw-direct-'), 'disk.raw', size);
  const image = stack.glance.createImage('project-a', { disk_format: 'raw', container_format: 'bare' });
  const writes = directWrites.length;
  const calls = tusWrites;

  const result = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id }, chunkSize: MiB });
  const patches = directWrites.slice(writes);
  assert.equal(patches.length, 4, 'each of the 4 PATCHes went through the gateway handler writeToStore');
  assert.equal(tusWrites, calls, 'none fell back to tus own writeToStore');
  for (const web of patches) assert.equal(web?.locked, false, 'the Web-stream body was never read');

  const { status } = await waitForState(stack.gw.url, result.uploadUrl, 'token-a', ['active', 'failed']);
  assert.equal(status.state, 'active', JSON.stringify(status.error));
  assert.equal(stack.glance.puts.at(-1)?.sha256, file.sha256, 'the bytes arrived whole');
});
