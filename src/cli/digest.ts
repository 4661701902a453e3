import { createHash, getHashes } from 'node:crypto';
import fs from 'node:fs';
import { DEFAULT_ALGO, opensslName } from '../glance/multihash.js';
import type { UploadStatus } from '../ingest/uploads.js';

/** A digest named as Glance names it (`os_hash_algo`, or `md5` for `checksum`). */
export interface Digest {
  algo: string;
  value: string;
}

export type Verdict =
  | { kind: 'verified'; digest: Digest }
  | { kind: 'mismatch'; local: Digest; glance: Digest }
  | { kind: 'unverified'; reason: string };

/** The local file could not be read to check the image against it: exit 1. */
export class VerifyError extends Error {}

/**
 * The local file's digest, compared with the one Glance computed of the image. Hashing starts
 * as soon as the bytes are sent, so it runs while the push is followed; it reads the file as it
 * is then, which is what "the image is the file" has to mean.
 */
export class Verifier {
  readonly #running = new Map<string, Promise<Digest>>();
  readonly #done = new Set<string>();

  constructor(private readonly file: string) {}

  /** Start hashing in `algo` (default: Glance's default), if not already under way. */
  start(algo: string | null | undefined = DEFAULT_ALGO): void {
    if (algo && !this.#running.has(algo) && canHash(algo)) void this.#digest(algo);
  }

  /** `onWait`: told when the digest is not ready yet (the push beat the local read). */
  async verify(status: UploadStatus, onWait: (algo: string) => void): Promise<Verdict> {
    const glance = status.glance;
    let expected: Digest | undefined;
    if (glance?.os_hash_algo && glance.os_hash_value && canHash(glance.os_hash_algo)) {
      expected = { algo: glance.os_hash_algo, value: glance.os_hash_value };
    } else if (glance?.checksum && canHash('md5')) {
      expected = { algo: 'md5', value: glance.checksum }; // a Glance older than multihash
    }
    if (!expected) {
      const reason = glance?.os_hash_algo && glance.os_hash_value
        ? `Glance hashes with ${glance.os_hash_algo}, which this system cannot compute, and gave no checksum`
        : 'Glance reported neither os_hash_value nor checksum for the image';
      return { kind: 'unverified', reason };
    }
    if (!this.#done.has(expected.algo)) onWait(expected.algo);
    const local = await this.#digest(expected.algo);
    return local.value === expected.value.toLowerCase() ? { kind: 'verified', digest: local } : { kind: 'mismatch', local, glance: expected };
  }

  #digest(algo: string): Promise<Digest> {
    let running = this.#running.get(algo);
    if (!running) {
      running = fileDigest(this.file, algo).then(
        (digest) => {
          this.#done.add(algo);
          return digest;
        },
        (err: unknown) => {
          throw new VerifyError(`cannot read ${this.file} to check the image against it: ${(err as Error).message}`);
        },
      );
      running.catch(() => undefined); // reported when verify() awaits it, not as an unhandled rejection
      this.#running.set(algo, running);
    }
    return running;
  }
}

function canHash(algo: string): boolean {
  return getHashes().includes(opensslName(algo));
}

/** Streamed in 1 MiB reads: constant memory whatever the size. */
async function fileDigest(file: string, algo: string): Promise<Digest> {
  const hash = createHash(opensslName(algo));
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return { algo, value: hash.digest('hex') };
}
