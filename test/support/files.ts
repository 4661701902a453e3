// Test data: files of pseudo-random bytes (fast to make, not compressible, every MiB distinct).
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export const MiB = 1024 * 1024;

export async function makeFile(dir: string, name: string, bytes: number, head?: Buffer): Promise<{ path: string; sha256: string }> {
  const file = path.join(dir, name);
  const block = randomBytes(MiB);
  const hash = createHash('sha256');
  const out = fs.createWriteStream(file);
  for (let written = 0, i = 0; written < bytes; i++) {
    const chunk = Buffer.from(block.subarray(0, Math.min(MiB, bytes - written)));
    chunk.writeUInt32BE(i, chunk.length >= 8 ? 4 : 0); // make each block distinct
    if (written === 0 && head) head.copy(chunk, 0, 0, Math.min(head.length, chunk.length));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    written += chunk.length;
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { path: file, sha256: hash.digest('hex') };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Names of the files left in a directory, for "nothing was stored" checks. */
export async function listFiles(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
}

/** The hashes Glance reports: MD5 `checksum` and SHA-512 `os_hash_value`. */
export async function glanceHashes(file: string): Promise<{ md5: string; sha512: string }> {
  const md5 = createHash('md5');
  const sha512 = createHash('sha512');
  for await (const chunk of fs.createReadStream(file)) {
    md5.update(chunk as Buffer);
    sha512.update(chunk as Buffer);
  }
  return { md5: md5.digest('hex'), sha512: sha512.digest('hex') };
}

/** Every file under a directory, recursively. */
export async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else yield full;
  }
}

/** Fail if any log line or any file under `dir` holds one of the tokens. */
export async function assertNoToken(tokens: string[], lines: string[], dir: string): Promise<void> {
  for (const token of tokens) {
    if (lines.some((l) => l.includes(token))) throw new Error('a log line holds a token');
  }
  for await (const file of walk(dir)) {
    // A file renamed meanwhile (an atomic write's temporary file) is read under its new name.
    const content = await fsp.readFile(file, 'latin1').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    for (const token of tokens) if (content.includes(token)) throw new Error(`${file} holds a token`);
  }
}
