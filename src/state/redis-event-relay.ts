import type { Redis } from 'ioredis';
import type { EventRelay, SharedEvent } from './upload-events.js';

/**
 * Upload events over Redis pub/sub: what one instance publishes, the others deliver to their
 * event streams. Records carry no token, so nothing secret goes through Redis. Fire and forget:
 * a message lost while Redis is away costs a watcher an update, never state.
 */
export class RedisEventRelay implements EventRelay {
  readonly #channel: string;

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    /** This instance: its own messages come back and are dropped. */
    private readonly origin: string,
    prefix = 'gw:',
  ) {
    this.#channel = `${prefix}events`;
  }

  send(event: SharedEvent): void {
    this.publisher.publish(this.#channel, JSON.stringify({ origin: this.origin, event })).catch(() => undefined);
  }

  listen(deliver: (event: SharedEvent) => void): void {
    void this.subscriber.subscribe(this.#channel).catch(() => undefined);
    this.subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.#channel) return;
      let message: { origin: string; event: SharedEvent };
      try {
        message = JSON.parse(text) as typeof message;
      } catch {
        return; // not ours: only the gateway publishes here
      }
      if (message.origin !== this.origin) deliver(message.event);
    });
  }
}
