import type { UploadState } from './upload-record.js';

/**
 * Every state change an upload may make, and no other. A store refuses a move that is not here
 * (a programming error) and one whose record is no longer in the state the caller saw (a conflict).
 */
export const TRANSITIONS: Readonly<Record<UploadState, readonly UploadState[]>> = {
  // Complete: queued for a slot, or waiting for a token; a streaming push goes straight on.
  receiving: ['queued', 'awaiting_token', 'pushing'],
  queued: ['pushing', 'awaiting_token'],
  // Back to `queued`: a streaming push that stopped, or an outcome that could not be recorded.
  pushing: ['verifying', 'active', 'retrying', 'awaiting_token', 'failed', 'queued'],
  verifying: ['active', 'retrying', 'awaiting_token', 'failed', 'queued'],
  // A due retry passes through `queued` as a fresh push does.
  retrying: ['queued', 'awaiting_token'],
  // To itself: `POST /push` resets the retry budget of an upload that still has no token.
  awaiting_token: ['queued', 'awaiting_token'],
  failed: ['queued', 'awaiting_token'],
  active: [],
};

/** States whose record holds a push lease: the instance running the push, and until when. */
export const LEASED_STATES: readonly UploadState[] = ['pushing', 'verifying'];

export function isAllowed(from: UploadState, to: UploadState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The record is not in a state the caller expected, or another instance holds its push. */
export class StateConflictError extends Error {
  constructor(
    readonly uploadId: string,
    /** The state the record is really in. */
    readonly actual: UploadState,
    /** The owner of the live lease that refused the move, if that was the reason. */
    readonly holder?: string,
  ) {
    super(
      holder === undefined
        ? `upload ${uploadId} is ${actual}`
        : `upload ${uploadId} is ${actual} and its push is held by ${holder}`,
    );
    this.name = 'StateConflictError';
  }
}

/** A move the table does not have: a bug in the caller, never a race. */
export class TransitionNotAllowedError extends Error {
  constructor(from: UploadState, to: UploadState) {
    super(`no transition from ${from} to ${to}`);
    this.name = 'TransitionNotAllowedError';
  }
}

/** Throws for the first state in `from` that may not move to `to`. */
export function assertAllowed(from: readonly UploadState[], to: UploadState): void {
  for (const state of from) if (!isAllowed(state, to)) throw new TransitionNotAllowedError(state, to);
}

type DebugLog = { debug(fields: object, message: string): void };

/** A conflict means someone else (a request, another instance) moved the upload on first: the step stops. */
export function movedOn(err: unknown, log: DebugLog): boolean {
  if (!(err instanceof StateConflictError)) return false;
  log.debug({ state: err.actual, holder: err.holder }, 'upload moved on meanwhile; this step stops');
  return true;
}

/** `movedOn` for `.catch`: anything but a conflict is thrown on. */
export function unlessMovedOn(log: DebugLog): (err: unknown) => void {
  return (err) => {
    if (!movedOn(err, log)) throw err;
  };
}
