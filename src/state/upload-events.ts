import { EventEmitter } from 'node:events';
import type { UploadRecord } from './upload-record.js';

/** `remote`: the change happened on another instance (metrics count only their own). */
export type UploadEvent =
  | { kind: 'state'; record: UploadRecord; remote?: true }
  | { kind: 'progress'; id: string; offset?: number; pushed?: number; remote?: true }
  | { kind: 'removed'; id: string; remote?: true }
  | { kind: 'shutdown' };

export type SharedEvent = Exclude<UploadEvent, { kind: 'shutdown' }>;

/** Carries events between instances (Redis pub/sub); each instance hears every other's. */
export interface EventRelay {
  send(event: SharedEvent): void;
  /** `deliver` is called with the events of the other instances. */
  listen(deliver: (event: SharedEvent) => void): void;
}

/**
 * Change notifications per upload, as plain data (for SSE, metrics, hooks): this instance's
 * at once, and, with a relay, every other instance's too.
 */
export class UploadEvents {
  readonly #emitter = new EventEmitter().setMaxListeners(0);
  /** Bytes each running push has sent, as last reported by whichever instance runs it. */
  readonly #pushed = new Map<string, number>();

  constructor(private readonly relay?: EventRelay) {
    relay?.listen((event) => this.#deliver({ ...event, remote: true }));
  }

  publish(event: SharedEvent): void {
    this.#deliver(event);
    this.relay?.send(event);
  }

  /** Bytes sent by the upload's running push, on whichever instance it runs; undefined if none runs. */
  pushed(uploadId: string): number | undefined {
    return this.#pushed.get(uploadId);
  }

  /** The process is stopping: every subscriber (an open event stream, say) should let go. */
  shutdown(): void {
    for (const name of this.#emitter.eventNames()) this.#emitter.emit(name, { kind: 'shutdown' });
  }

  /** Subscribe to one upload ('*' for all); returns the unsubscribe function. */
  subscribe(id: string, listener: (event: UploadEvent) => void): () => void {
    this.#emitter.on(id, listener);
    return () => this.#emitter.off(id, listener);
  }

  #deliver(event: SharedEvent): void {
    const id = event.kind === 'state' ? event.record.id : event.id;
    if (event.kind === 'progress' && event.pushed !== undefined) this.#pushed.set(id, event.pushed);
    if (event.kind === 'removed' || (event.kind === 'state' && !RUNNING.has(event.record.state))) this.#pushed.delete(id);
    this.#emitter.emit(id, event);
    this.#emitter.emit('*', event);
  }
}

/** States in which a push may be sending bytes. */
const RUNNING = new Set(['receiving', 'pushing', 'verifying']);
