// Following a data file that is still written: a file that grows too slowly counts as stalled, a complete one never does.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { GrowingFile, StreamStalledError } from '../src/storage/growing-file.js';
import { tempDir } from './support/gateway.js';

let dir: string;
before(async () => {
  dir = await tempDir('gw-growing-');
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Appends `chunk` bytes every `everyMs` until `size` bytes are there, `stop()` is called, or 5 s passed. */
function grow(file: string, size: number, chunk: number, everyMs: number): { stop(): void; done: Promise<void> } {
  let stopped = false;
  const until = Date.now() + 5_000;
  const done = (async () => {
    for (let written = 0; written < size && !stopped && Date.now() < until; written += chunk) {
      await fsp.appendFile(file, Buffer.alloc(Math.min(chunk, size - written), 1));
      await sleep(everyMs);
    }
  })();
  return { stop: () => (stopped = true), done };
}

async function readAll(file: GrowingFile, pauseMs = 0): Promise<number> {
  let total = 0;
  for (let chunk; (chunk = await file.next((n) => Buffer.alloc(Math.min(n, 1 << 16)))); total += chunk.length) await sleep(pauseMs);
  return total;
}

test('a file that keeps growing, but below minRate over the window, is given up as stalled', { timeout: 10_000 }, async () => {
  const name = path.join(dir, 'trickle');
  await fsp.writeFile(name, '');
  const writer = grow(name, 1 << 20, 16, 50); // 320 bytes/s, never silent for long
  const file = await GrowingFile.open(name, { size: 1 << 20, stallMs: 400, minRate: 10_000 });
  const started = Date.now();
  try {
    await assert.rejects(readAll(file), (err: Error) => err instanceof StreamStalledError && /bytes\/s/.test(err.message));
    assert.ok(Date.now() - started < 1_000, `given up after one window, not ${Date.now() - started} ms`);
  } finally {
    writer.stop();
    await writer.done;
    await file.close();
  }
});

test('a file growing above minRate is followed to its end', async () => {
  const name = path.join(dir, 'steady');
  await fsp.writeFile(name, '');
  const size = 24 * 16_384;
  const writer = grow(name, size, 16_384, 20); // about 800 KB/s for 0.5 s
  const file = await GrowingFile.open(name, { size, stallMs: 200, minRate: 100_000 });
  try {
    assert.equal(await readAll(file), size);
  } finally {
    await writer.done;
    await file.close();
  }
});

test('a complete file read slowly is never given up for its rate', async () => {
  const name = path.join(dir, 'complete');
  await fsp.writeFile(name, Buffer.alloc(4 << 16, 2));
  const file = await GrowingFile.open(name, { size: 4 << 16, stallMs: 100, minRate: 1 << 30 });
  try {
    assert.equal(await readAll(file, 150), 4 << 16);
  } finally {
    await file.close();
  }
});
