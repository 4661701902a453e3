import type { Logger } from '../logger.js';
import type { UploadStateStore } from '../state/state-store.js';
import type { ContentHash, UploadRecord } from '../state/upload-record.js';
import { DEFAULT_ALGO, hashStored, type Hashing } from './hashing.js';
import type { StoredFiles } from './stored-files.js';

/**
 * The digests of stored uploads, one under way per upload. A digest runs beside its push,
 * reading the same file: Glance spends about four times as much CPU on the bytes sent, so it
 * costs no extra wall time (and none during ingest without streaming).
 */
export class Digests {
  readonly #running = new Map<string, Hashing>();
  /** The multihash algorithm each Glance endpoint was last seen to use (`os_hash_algo`). */
  readonly #algos = new Map<string, string>();

  constructor(
    private readonly files: Pick<StoredFiles, 'followInto'>,
    private readonly store: Pick<UploadStateStore, 'update'>,
  ) {}

  /** Glance's `os_hash_algo` as last seen at this endpoint: the digest to compute before it answers. */
  algoFor(glanceUrl: string): string {
    return this.#algos.get(glanceUrl) ?? DEFAULT_ALGO;
  }

  learn(glanceUrl: string, algo: string | undefined | null): void {
    if (algo) this.#algos.set(glanceUrl, algo);
  }

  /** Start hashing the upload in `algo` (following it while it grows, if `follow`), unless that runs already. */
  start(record: UploadRecord, algo: string, follow?: { stallMs: number; minRate: number }): Hashing {
    const running = this.#running.get(record.id);
    if (running?.algo === algo) return running;
    running?.abort();
    const hashing = hashStored(this.files, record.id, record.size, algo, follow);
    this.#running.set(record.id, hashing);
    // One that stopped (the client stalled) is started again by the next push.
    hashing.result.catch(() => this.#running.get(record.id) === hashing && this.#running.delete(record.id));
    return hashing;
  }

  /** The stored file's digest in `algo`: saved in the record, under way, or computed now (and saved). */
  async of(record: UploadRecord, algo: string, log: Logger): Promise<ContentHash> {
    if (record.hash?.algo === algo) return record.hash;
    const running = this.#running.get(record.id);
    if (running && running.algo !== algo) log.info({ algo, was: running.algo }, 'Glance hashes otherwise: digest computed again');
    const hash = await this.start(record, algo).result;
    log.debug({ algo }, 'digest ready');
    await this.store.update(record.id, { hash });
    return hash;
  }

  /** Stop and forget the upload's digest: a later push hashes again (the bytes may have been replaced by then). */
  drop(uploadId: string): void {
    this.#running.get(uploadId)?.abort();
    this.#running.delete(uploadId);
  }

  close(): void {
    for (const id of [...this.#running.keys()]) this.drop(id);
  }
}
