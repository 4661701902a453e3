/** What a GuardedStore tells the rest of the gateway; listeners run in turn and are awaited. */
export interface StoreHooks {
  /** Bytes are about to be written: a listener refuses the write by throwing (a lapsed storage reservation, say). */
  writing: (uploadId: string) => void | Promise<void>;
  /** Bytes that reached storage in one write, a failed write's included (for metrics). */
  written: (bytes: number) => void | Promise<void>;
  /** A write ended; the upload now holds `offset` bytes. */
  stored: (uploadId: string, offset: number) => void | Promise<void>;
  /** An upload's data is gone (terminated, expired, refused); emitted before anyone is answered. */
  removed: (uploadId: string) => void | Promise<void>;
}

type Listeners = { [K in keyof StoreHooks]: StoreHooks[K][] };

/**
 * Unlike an EventEmitter, `emit` waits for every listener and passes on a listener's error:
 * the store's answer to tus must come after what listens to it has caught up.
 */
export class StoreEvents {
  readonly #listeners: Listeners = { writing: [], written: [], stored: [], removed: [] };

  /** Returns the unsubscribe function. */
  on<K extends keyof StoreHooks>(event: K, listener: StoreHooks[K]): () => void {
    const list = this.#listeners[event] as StoreHooks[K][];
    list.push(listener);
    return () => {
      const at = list.indexOf(listener);
      if (at >= 0) list.splice(at, 1);
    };
  }

  async emit<K extends keyof StoreHooks>(event: K, ...args: Parameters<StoreHooks[K]>): Promise<void> {
    for (const listener of [...this.#listeners[event]]) {
      await (listener as (...a: Parameters<StoreHooks[K]>) => void | Promise<void>)(...args);
    }
  }
}
