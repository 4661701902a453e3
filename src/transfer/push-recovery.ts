import type { Logger } from '../logger.js';
import { liveHolder } from '../state/lease.js';
import type { RecordPatch, UploadStateStore } from '../state/state-store.js';
import type { TokenSource } from '../state/token-source.js';
import { LEASED_STATES, unlessMovedOn } from '../state/transitions.js';
import { UNFINISHED_PUSH_STATES, type UploadRecord, type UploadState } from '../state/upload-record.js';

const OVERDUE_MS = 15_000;

export interface PushRecoveryDeps {
  store: Pick<UploadStateStore, 'list'>;
  tokens: Pick<TokenSource, 'has'>;
  logger: Logger;
  /** This instance, as a lease owner. */
  owner: string;
  /** Whether this instance runs the upload's push now. */
  running(uploadId: string): boolean;
  move(uploadId: string, from: UploadState, to: UploadState, patch: RecordPatch): Promise<UploadRecord>;
  queue(uploadId: string, delayMs?: number): Promise<void>;
  /** A push waiting for a token has one now: on as for a client's request. */
  resume(uploadId: string): Promise<void>;
}

/**
 * Pushes nobody runs any more: those unfinished at a start, and those whose instance stopped
 * renewing its lease (it died). Each goes back to `queued` (or `awaiting_token` without a token
 * or trust); a push another instance still holds is left to it.
 */
export class PushRecovery {
  constructor(private readonly deps: PushRecoveryDeps) {}

  /** After a start no client token is held: every unfinished push goes on with its trust, or waits for its client. */
  async recover(): Promise<void> {
    for (const { id, state } of await this.deps.store.list()) {
      if (!UNFINISHED_PUSH_STATES.includes(state)) continue;
      const to = (await this.deps.tokens.has(id)) ? 'queued' : 'awaiting_token';
      try {
        if (state !== 'queued' || to !== 'queued') await this.deps.move(id, state, to, { nextAttemptAt: null });
        if (to === 'queued') await this.deps.queue(id);
      } catch (err) {
        unlessMovedOn(this.deps.logger.child({ uploadId: id }))(err);
      }
    }
  }

  /** A push left in `pushing` or `verifying` by a stopped instance, back to `queued` as this one; a live lease is waited for. */
  async takeOver(record: UploadRecord): Promise<UploadRecord | undefined> {
    const log = this.deps.logger.child({ uploadId: record.id });
    const holder = liveHolder(record.lease);
    if (holder !== undefined && holder !== this.deps.owner) {
      await this.deps.queue(record.id, Date.parse(record.lease!.until) - Date.now() + 100);
      return undefined;
    }
    try {
      const taken = await this.deps.move(record.id, record.state, 'queued', { nextAttemptAt: null });
      log.warn({ from: record.lease?.owner }, 'push taken over from an instance that stopped renewing its lease');
      return taken;
    } catch (err) {
      unlessMovedOn(log)(err);
      return undefined;
    }
  }

  /**
   * Queue the pushes nobody runs: left by a stopped instance (lease lapsed), queued with no queue
   * entry, or waiting for a token although a trust has come since.
   */
  async adopt(): Promise<void> {
    for (const record of await this.deps.store.list()) {
      const orphaned = LEASED_STATES.includes(record.state) && liveHolder(record.lease) === undefined && !this.deps.running(record.id);
      // A retry whose queue entry was lost (a job that failed while Redis was away) is long overdue.
      const overdue = record.state === 'retrying' && Date.parse(record.nextAttemptAt ?? '') < Date.now() - OVERDUE_MS;
      if (orphaned || overdue || record.state === 'queued') await this.deps.queue(record.id);
      if (record.state === 'awaiting_token' && (await this.deps.tokens.has(record.id))) await this.deps.resume(record.id);
    }
  }
}
