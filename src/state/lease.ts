import { randomUUID } from 'node:crypto';
import { NotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { UploadStateStore } from './state-store.js';
import { StateConflictError } from './transitions.js';
import type { Lease, UploadRecord } from './upload-record.js';

/** How long a push lease lasts unless renewed, and how often a running push renews it. */
export const LEASE_MS = 30_000;
export const LEASE_RENEW_MS = 10_000;

/** This process's name as a lease owner: new at every start, so no lease outlives its process by more than LEASE_MS. */
export function newInstanceId(): string {
  return randomUUID();
}

/** The owner of a lease that has not lapsed yet, if any. */
export function liveHolder(lease: Lease | null | undefined, now = Date.now()): string | undefined {
  return lease && Date.parse(lease.until) > now ? lease.owner : undefined;
}

/** Another instance is running this upload's push: leave the record to it. */
export function heldElsewhere(record: UploadRecord, owner: string, now = Date.now()): boolean {
  const holder = liveHolder(record.lease, now);
  return holder !== undefined && holder !== owner;
}

/**
 * Renews the leases of this instance's running pushes. A lease found gone or taken (another
 * instance moved the upload on, or it was removed) ends that push through `lost`.
 */
export class LeaseKeeper {
  readonly #timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: UploadStateStore,
    /** This instance, as the owner of the leases it takes. */
    readonly owner: string,
    private readonly logger: Logger,
    private readonly everyMs = LEASE_RENEW_MS,
  ) {}

  keep(uploadId: string, lost: () => void): void {
    this.stop(uploadId);
    // Until when the lease surely holds: renewals that cannot reach the store must not outlast it.
    let holds = Date.now() + LEASE_MS;
    const timer = setInterval(() => {
      this.store.renewLease(uploadId, this.owner).then((record) => {
        holds = record.lease ? Date.parse(record.lease.until) : holds;
      }, (err: unknown) => {
        if (this.#timers.get(uploadId) !== timer) return; // the push ended meanwhile
        const lapsing = Date.now() >= holds - this.everyMs;
        if (!(err instanceof StateConflictError || err instanceof NotFoundError) && !lapsing) {
          return this.logger.warn({ err, uploadId }, 'push lease not renewed; trying again');
        }
        this.logger.warn({ uploadId, reason: (err as Error).message }, 'push lease lost; push aborted');
        this.stop(uploadId);
        lost();
      });
    }, this.everyMs);
    timer.unref();
    this.#timers.set(uploadId, timer);
  }

  stop(uploadId: string): void {
    clearInterval(this.#timers.get(uploadId));
    this.#timers.delete(uploadId);
  }

  close(): void {
    for (const id of [...this.#timers.keys()]) this.stop(id);
  }
}
