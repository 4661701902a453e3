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
