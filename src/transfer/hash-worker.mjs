// Runs in a worker thread: one digest of a data file, in the algorithm Glance names in `os_hash_algo`,
// waiting for bytes that are still being written. Data files only grow, so these are the bytes pushed.
// Plain JavaScript: a worker thread loads it as it is, from src/ (tests) or dist/.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';

/** @type {{ file: string, size: number, algorithm: string, stallMs: number, nice: number }} */
const { file, size, algorithm, stallMs, nice } = workerData;
const CHUNK = 2 << 20;
const POLL_MS = 20;

// Background work: on Linux the nice value is per thread, so this thread alone yields to the
// event loop (clients' bytes) and to everything else on the host that moves data.
try {
  os.setPriority(nice);
} catch {
  // not permitted here: hash at normal priority
}

const hash = createHash(algorithm);
const buffer = Buffer.allocUnsafe(CHUNK);
const nap = new Int32Array(new SharedArrayBuffer(4));
const fd = fs.openSync(file, 'r');
try {
  let lastProgress = Date.now();
  let known = 0; // bytes known to be in the file: stat only when they are used up
  for (let position = 0; position < size; ) {
    if (position >= known) known = Math.min(size, fs.fstatSync(fd).size);
    if (position >= known) {
      if (Date.now() - lastProgress > stallMs) {
        parentPort?.postMessage({ stalled: true }); // the client went quiet: hashing starts again with the next push
        process.exit(0);
      }
      Atomics.wait(nap, 0, 0, POLL_MS); // still arriving
      continue;
    }
    lastProgress = Date.now();
    const read = fs.readSync(fd, buffer, 0, Math.min(CHUNK, known - position), position);
    if (read === 0) {
      known = position; // shorter than it said: look again
      continue;
    }
    hash.update(buffer.subarray(0, read));
    position += read;
  }
  parentPort?.postMessage({ value: hash.digest('hex') });
} finally {
  fs.closeSync(fd);
}
