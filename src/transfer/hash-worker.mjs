// Runs in a worker thread: hashes a data file as Glance does (MD5 `checksum`, SHA-512 `os_hash_value`),
// waiting for bytes that are still being written. Data files only grow, so these are the bytes pushed.
// Plain JavaScript: a worker thread loads it as it is, from src/ (tests) or dist/.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

/** @type {{ file: string, size: number, stallMs: number }} */
const { file, size, stallMs } = workerData;
const CHUNK = 1 << 20;
const POLL_MS = 20;

const md5 = createHash('md5');
const sha512 = createHash('sha512');
const buffer = Buffer.allocUnsafe(CHUNK);
const nap = new Int32Array(new SharedArrayBuffer(4));
const fd = fs.openSync(file, 'r');
try {
  let lastProgress = Date.now();
  for (let position = 0; position < size; ) {
    const available = Math.min(size, fs.fstatSync(fd).size) - position;
    if (available <= 0) {
      if (Date.now() - lastProgress > stallMs) {
        parentPort?.postMessage({ stalled: true }); // the client went quiet: hashing starts again when it is back
        process.exit(0);
      }
      Atomics.wait(nap, 0, 0, POLL_MS); // still arriving
      continue;
    }
    lastProgress = Date.now();
    const read = fs.readSync(fd, buffer, 0, Math.min(CHUNK, available), position);
    const bytes = buffer.subarray(0, read);
    md5.update(bytes);
    sha512.update(bytes);
    position += read;
  }
  parentPort?.postMessage({ md5: md5.digest('hex'), sha512: sha512.digest('hex') });
} finally {
  fs.closeSync(fd);
}
