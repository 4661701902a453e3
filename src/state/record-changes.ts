import { liveHolder } from './lease.js';
import { assertPlainPatch, type RecordPatch, type Transition } from './state-store.js';
import { assertAllowed, LEASED_STATES, StateConflictError } from './transitions.js';
import type { UploadRecord } from './upload-record.js';

/**
 * The checks and the new record of every store change, as plain functions: each store applies
 * them in one atomic step of its own (a synchronous step on a mirror, a compare-and-set in Redis).
 */

/** Throws before anything is read: a move the table does not have, a patch that touches state or lease. */
export function checkTransition(change: Transition): readonly UploadRecord['state'][] {
  const from = typeof change.from === 'string' ? [change.from] : change.from;
  assertAllowed(from, change.to);
  assertPlainPatch(change.patch ?? {});
  if (LEASED_STATES.includes(change.to) && !change.owner) throw new TypeError(`a move to ${change.to} needs an owner`);
  return from;
}

export function transitioned(current: UploadRecord, change: Transition, leaseMs: number, now = Date.now()): UploadRecord {
  const from = checkTransition(change);
  if (!from.includes(current.state)) throw new StateConflictError(current.id, current.state);
  const holder = liveHolder(current.lease, now);
  if (holder !== undefined && holder !== change.owner) throw new StateConflictError(current.id, current.state, holder);
  const lease = LEASED_STATES.includes(change.to) ? { owner: change.owner!, until: new Date(now + leaseMs).toISOString() } : null;
  return { ...current, ...change.patch, state: change.to, lease, updatedAt: new Date(now).toISOString() };
}

export function renewed(current: UploadRecord, owner: string, leaseMs: number, now = Date.now()): UploadRecord {
  if (!LEASED_STATES.includes(current.state) || current.lease?.owner !== owner) {
    throw new StateConflictError(current.id, current.state, current.lease?.owner);
  }
  return { ...current, lease: { owner, until: new Date(now + leaseMs).toISOString() } };
}

export function updated(current: UploadRecord, patch: RecordPatch, only?: (current: UploadRecord) => boolean, now = Date.now()): UploadRecord {
  assertPlainPatch(patch);
  if (only && !only(current)) throw new StateConflictError(current.id, current.state);
  return { ...current, ...patch, updatedAt: new Date(now).toISOString() };
}

/** A record that keeps its image from taking another upload: any but an active one (a failed one still holds its bytes). */
export function holdsImage(record: UploadRecord | undefined): boolean {
  return record !== undefined && record.state !== 'active';
}
