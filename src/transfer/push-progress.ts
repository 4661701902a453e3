import type { UploadEvents } from '../state/upload-events.js';

const PROGRESS_EVERY_MS = 250;

/** Bytes sent by running pushes: read live by the status, published as events at most every 250 ms. */
export class PushProgress {
  readonly #pushed = new Map<string, { bytes: number; sentAt: number }>();

  constructor(private readonly events: UploadEvents) {}

  report(uploadId: string, bytes: number): void {
    const now = Date.now();
    const last = this.#pushed.get(uploadId);
    const due = !last || now - last.sentAt >= PROGRESS_EVERY_MS;
    this.#pushed.set(uploadId, { bytes, sentAt: due ? now : last.sentAt });
    if (due) this.events.publish({ kind: 'progress', id: uploadId, pushed: bytes });
  }

  /** Bytes sent in the running attempt, if one runs. */
  live(uploadId: string): number | undefined {
    return this.#pushed.get(uploadId)?.bytes;
  }

  ended(uploadId: string): void {
    this.#pushed.delete(uploadId);
  }
}
