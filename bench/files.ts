// Test files: a random 1 MiB block repeated, each MiB stamped with its index, so no two
// MiB are equal and nothing along the way can compress or deduplicate the data.
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import { MiB } from './config.js';

export async function makeFile(path: string, size: number): Promise<void> {
  const block = randomBytes(MiB);
  const fh = await fsp.open(path, 'w');
  try {
    const batch = 16; // one writev per 16 MiB
    for (let mib = 0; mib * MiB < size; mib += batch) {
      const bufs: Buffer[] = [];
      for (let i = mib; i < mib + batch && i * MiB < size; i++) {
        const b = Buffer.from(block);
        b.writeBigUInt64BE(BigInt(i), 512); // not at 0: keep the first bytes random (content check)
        bufs.push(b.subarray(0, Math.min(MiB, size - i * MiB)));
      }
      await fh.writev(bufs);
    }
  } finally {
    await fh.close();
  }
}
