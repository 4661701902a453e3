/**
 * Pushes waiting for a slot. The first implementation runs them in this process;
 * a shared (Redis) one would hand ids to whichever instance has a free slot.
 */
export interface PushQueue {
  /** Add an upload; a no-op when it is already waiting; once more after the current run when running. */
  add(uploadId: string): void;
  /** Take an upload out of the waiting line (a running push is cancelled elsewhere). */
  remove(uploadId: string): void;
  /** Waiting plus running. */
  readonly depth: number;
  close(): void;
}

export class LocalPushQueue implements PushQueue {
  readonly #waiting = new Set<string>();
  readonly #running = new Set<string>();
  readonly #again = new Set<string>();
  #closed = false;

  constructor(
    private readonly concurrency: number,
    private readonly worker: (uploadId: string) => Promise<void>,
  ) {}

  get depth(): number {
    return this.#waiting.size + this.#running.size;
  }

  add(uploadId: string): void {
    if (this.#closed || this.#waiting.has(uploadId)) return;
    // A run that is ending may have looked at the upload before this request: run it again after.
    if (this.#running.has(uploadId)) return void this.#again.add(uploadId);
    this.#waiting.add(uploadId);
    this.#next();
  }

  remove(uploadId: string): void {
    this.#waiting.delete(uploadId);
    this.#again.delete(uploadId);
  }

  close(): void {
    this.#closed = true;
    this.#waiting.clear();
  }

  #next(): void {
    while (!this.#closed && this.#running.size < this.concurrency && this.#waiting.size > 0) {
      const id = this.#waiting.values().next().value as string;
      this.#waiting.delete(id);
      this.#running.add(id);
      // The worker owns its errors; the catch only guards the slot accounting.
      void this.worker(id)
        .catch(() => undefined)
        .finally(() => {
          this.#running.delete(id);
          if (this.#again.delete(id)) this.#waiting.add(id);
          this.#next();
        });
    }
  }
}
