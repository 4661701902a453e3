import type { UploadRecord } from '../state/upload-record.js';
import type { FollowStream, StoredFiles } from './stored-files.js';

/**
 * A push that runs while its upload still arrives, following the growing file. The last byte is
 * held back until the upload is complete and checked, so Glance cannot finish an image the
 * gateway would refuse.
 */
export class StreamingPush {
  /** The upload is complete and checked: the last byte may go. */
  released = false;
  readonly reader: FollowStream;
  readonly #controller = new AbortController();
  #ended!: () => void;
  /** Settles once the streaming attempt has ended, however it ended. */
  readonly done = new Promise<void>((resolve) => (this.#ended = resolve));

  constructor(files: Pick<StoredFiles, 'follow'>, record: UploadRecord, limits: { stallMs: number; minRate: number }) {
    const { size } = record;
    this.reader = files.follow(record.id, { size, allowed: () => (this.released ? size : size - 1), ...limits });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  abort(): void {
    this.#controller.abort();
  }

  end(): void {
    this.reader.destroy();
    this.#ended();
  }
}
