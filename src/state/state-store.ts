import type { UploadRecord, UploadState } from './upload-record.js';

/** Fields a caller may set: never the state (see `transition`) nor the lease, which the store keeps. */
export type RecordPatch = Partial<Omit<UploadRecord, 'id' | 'imageId' | 'createdAt' | 'updatedAt' | 'state' | 'lease'>>;

export interface Transition {
  /** The state(s) the caller saw; any other refuses the move with a StateConflictError. */
  from: UploadState | readonly UploadState[];
  to: UploadState;
  patch?: RecordPatch;
  /**
   * The instance making the move. Required into a leased state (`pushing`, `verifying`), where
   * it becomes the lease's owner; a live lease held by another owner refuses the move.
   */
  owner?: string;
}

/**
 * Where upload records live. The first implementation is local files; a shared (Redis) one must
 * keep `create` atomic on the one-unfinished-upload-per-image rule, and `transition` and
 * `renewLease` atomic on the record's state and lease. Every implementation runs
 * test/contracts/state-store.ts.
 */
export interface UploadStateStore {
  /** Store a new record; throws UploadExistsError if the image has an upload still in progress. */
  create(record: UploadRecord): Promise<void>;
  get(id: string): Promise<UploadRecord | undefined>;
  /**
   * Move a record to another state, checked against TRANSITIONS, its current state and its lease
   * in one atomic step; returns the new record. Throws NotFoundError, StateConflictError, or
   * TransitionNotAllowedError. Entering `pushing`/`verifying` takes (or renews) the lease for
   * `owner`; any other state drops it.
   */
  transition(id: string, change: Transition): Promise<UploadRecord>;
  /** Extend `owner`'s lease; throws StateConflictError if the lease is gone or another's. */
  renewLease(id: string, owner: string): Promise<UploadRecord>;
  /**
   * Apply a patch of non-state fields and return the new record; throws NotFoundError for an
   * unknown id. With `only`, atomically: a record for which it is false is left as it is and
   * StateConflictError thrown.
   */
  update(id: string, patch: RecordPatch, only?: (current: UploadRecord) => boolean): Promise<UploadRecord>;
  delete(id: string): Promise<void>;
  list(): Promise<UploadRecord[]>;
}

/** Patches are typed without `state` and `lease`; this keeps an untyped caller from slipping them in. */
export function assertPlainPatch(patch: object): void {
  for (const key of ['state', 'lease', 'id', 'imageId', 'createdAt']) {
    if (key in patch) throw new TypeError(`a patch may not set ${key}`);
  }
}
