/**
 * Pushes waiting for a slot, now or after a delay (a retry). The first implementation runs them
 * in this process; a shared (Redis) one would hand ids to whichever instance has a free slot.
 * Every implementation runs test/contracts/push-queue.ts.
 */
export interface PushQueue {
  /**
   * Run the upload's push once `delayMs` (default 0) has passed. One entry per upload: a second
   * add keeps one entry, due at the earlier time; an add while its push runs makes one more run
   * after that one (never two at once).
   */
  add(uploadId: string, options?: { delayMs?: number }): Promise<void>;
  /** Drop the upload's waiting or delayed entry (a running push is cancelled elsewhere). */
  remove(uploadId: string): Promise<void>;
  /** Entries due and waiting for a slot, plus running ones; a delayed entry counts once due. */
  depth(): Promise<number>;
  /** Nothing more starts; running pushes are aborted elsewhere. */
  close(): Promise<void>;
}

/** Runs one push; `lost` aborts when the queue no longer holds the entry for this instance (another may run it). */
export type PushWorker = (uploadId: string, lost: AbortSignal) => Promise<void>;

/** The signal of an entry only this process runs: never lost. */
const KEPT = new AbortController().signal;

export class LocalPushQueue implements PushQueue {
  readonly #waiting = new Set<string>();
  readonly #delayed = new Map<string, { due: number; timer: NodeJS.Timeout }>();
  readonly #running = new Set<string>();
  /** Uploads to run again once their running push ends, and from when. */
  readonly #again = new Map<string, number>();
  #closed = false;

  constructor(
    private readonly concurrency: number,
    private readonly worker: PushWorker,
  ) {}

  /** `depth()` without waiting, for this process's own gauges. */
  get size(): number {
    return this.#waiting.size + this.#running.size;
  }

  async depth(): Promise<number> {
    return this.size;
  }

  async add(uploadId: string, options: { delayMs?: number } = {}): Promise<void> {
    if (this.#closed) return;
    const due = Date.now() + Math.max(0, options.delayMs ?? 0);
    if (this.#running.has(uploadId)) {
      // A run that is ending may have looked at the upload before this request: run it again after.
      const again = this.#again.get(uploadId);
      if (again === undefined || due < again) this.#again.set(uploadId, due);
      return;
    }
    this.#enter(uploadId, due);
  }

  async remove(uploadId: string): Promise<void> {
    this.#waiting.delete(uploadId);
    this.#again.delete(uploadId);
    this.#clearDelayed(uploadId);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#waiting.clear();
    this.#again.clear();
    for (const id of [...this.#delayed.keys()]) this.#clearDelayed(id);
  }

  #enter(uploadId: string, due: number): void {
    if (this.#waiting.has(uploadId)) return;
    const delayed = this.#delayed.get(uploadId);
    if (delayed && delayed.due <= due) return;
    this.#clearDelayed(uploadId);
    const wait = due - Date.now();
    if (wait <= 0) {
      this.#waiting.add(uploadId);
      return this.#next();
    }
    const timer = setTimeout(() => {
      this.#delayed.delete(uploadId);
      this.#waiting.add(uploadId);
      this.#next();
    }, wait);
    timer.unref();
    this.#delayed.set(uploadId, { due, timer });
  }

  #clearDelayed(uploadId: string): void {
    clearTimeout(this.#delayed.get(uploadId)?.timer);
    this.#delayed.delete(uploadId);
  }

  #next(): void {
    while (!this.#closed && this.#running.size < this.concurrency && this.#waiting.size > 0) {
      const id = this.#waiting.values().next().value as string;
      this.#waiting.delete(id);
      this.#running.add(id);
      // The worker owns its errors; the catch only guards the slot accounting.
      void new Promise<void>((resolve) => resolve(this.worker(id, KEPT)))
        .catch(() => undefined)
        .finally(() => {
          this.#running.delete(id);
          const again = this.#again.get(id);
          this.#again.delete(id);
          if (again !== undefined && !this.#closed) this.#enter(id, again);
          this.#next();
        });
    }
  }
}
