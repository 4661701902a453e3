import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { CliArgs } from './args.js';

/**
 * What a stored upload URL may be resumed for: `glance-upload/<target>/<content>`, two
 * fixed-length hashes. tus-js-client finds stored uploads by key prefix, so fixed lengths keep
 * one key from being the prefix of another, and `glance-upload/<target>/` finds every upload
 * this CLI holds for a target, whatever the file was then (--restart, the 409 hint).
 */
export interface ResumeKey {
  fingerprint: string;
  targetPrefix: string;
}

const MiB = 1024 * 1024;
/** Blocks sampled: the first and last MiB and this many between them. */
const INNER_SAMPLES = 6;

export async function resumeKey(file: string, gateway: string, target: CliArgs['target']): Promise<ResumeKey> {
  const targetPrefix = `glance-upload/${hash(JSON.stringify(targetParts(gateway, target)))}/`;
  return { fingerprint: targetPrefix + (await contentHash(file)), targetPrefix };
}

/** The gateway and the image; for a new image, what it is created with. */
function targetParts(gateway: string, target: CliArgs['target']): unknown[] {
  if (target.kind === 'existing') return [gateway, 'image', target.imageId];
  const { name, diskFormat, containerFormat, visibility, tags } = target.image;
  // An unset disk format is guessed from the bytes, which the content part already covers.
  return [gateway, 'new-image', name, diskFormat ?? null, containerFormat, visibility ?? null, [...(tags ?? [])].sort()];
}

/**
 * Which file, and which version of it. A replacement with the same size and mtime still
 * differs in its inode (written elsewhere and renamed over) or its ctime (written in place:
 * no call sets ctime back), and mostly in its bytes. The device number is left out: it can
 * change across reboots (device-mapper, NFS), which must not stop a resume.
 */
async function contentHash(file: string): Promise<string> {
  const abs = path.resolve(file);
  const fh = await fsp.open(abs, 'r');
  try {
    const st = await fh.stat({ bigint: true });
    const h = createHash('sha256');
    h.update(JSON.stringify([abs, String(st.size), String(st.ino), String(st.mtimeNs), String(st.ctimeNs)]));
    const buf = Buffer.alloc(MiB);
    for (const offset of sampleOffsets(Number(st.size))) {
      const { bytesRead } = await fh.read(buf, 0, MiB, offset);
      h.update(`${offset}:${bytesRead}:`).update(buf.subarray(0, bytesRead));
    }
    return h.digest('hex').slice(0, 32);
  } finally {
    await fh.close();
  }
}

/** Block-aligned starts of the sampled MiBs: the whole file when it is that small. */
export function sampleOffsets(size: number): number[] {
  const blocks = INNER_SAMPLES + 2;
  if (size <= blocks * MiB) return Array.from({ length: Math.ceil(size / MiB) }, (_, i) => i * MiB);
  const last = size - MiB;
  const offsets = [0];
  for (let i = 1; i <= INNER_SAMPLES; i++) offsets.push(Math.floor((last * i) / (INNER_SAMPLES + 1) / 4096) * 4096);
  offsets.push(last);
  return offsets;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
