import { EventEmitter } from 'node:events';
import type { UploadRecord } from './upload-record.js';

export type UploadEvent =
  | { kind: 'state'; record: UploadRecord }
  | { kind: 'progress'; id: string; offset?: number; pushed?: number }
  | { kind: 'removed'; id: string }
  | { kind: 'shutdown' };

/** Change notifications per upload, as plain data (for SSE, metrics, hooks). Local for now. */
export class UploadEvents {
  readonly #emitter = new EventEmitter().setMaxListeners(0);

  publish(event: Exclude<UploadEvent, { kind: 'shutdown' }>): void {
    const id = event.kind === 'state' ? event.record.id : event.id;
    this.#emitter.emit(id, event);
    this.#emitter.emit('*', event);
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
}
