import cliProgress from 'cli-progress';
import type { UploadStatus } from '../ingest/uploads.js';

/** What the user sees on stderr while the upload and the push run. stdout stays for the result. */
export interface Reporter {
  note(line: string): void;
  uploadProgress(sent: number, total: number): void;
  uploadDone(total: number): void;
  push(status: UploadStatus): void;
  stop(): void;
}

/** Bars on a terminal; one line per change otherwise, so logs and pipes stay readable. */
export function reporter(stream: NodeJS.WriteStream, bars: boolean): Reporter {
  return bars ? new BarReporter(stream) : new LineReporter(stream);
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

export function describe(status: UploadStatus): string {
  switch (status.state) {
    case 'retrying':
      return `retrying${status.nextAttemptAt ? ` at ${new Date(status.nextAttemptAt).toLocaleTimeString()}` : ''}` +
        (status.error ? ` (${status.error.message})` : '');
    case 'awaiting_token':
      return 'awaiting_token (sending a fresh token)';
    case 'failed':
      return `failed: ${status.error?.message ?? 'unknown error'}`;
    default:
      return status.state;
  }
}

class LineReporter implements Reporter {
  #uploadAnnounced = false;
  #lastState: string | undefined;

  constructor(private readonly out: NodeJS.WriteStream) {}

  note(line: string): void {
    this.out.write(`${line}\n`);
  }

  uploadProgress(_sent: number, total: number): void {
    if (this.#uploadAnnounced) return;
    this.#uploadAnnounced = true;
    this.note(`upload: sending ${bytes(total)}`);
  }

  uploadDone(total: number): void {
    this.note(`upload: complete (${bytes(total)})`);
  }

  push(status: UploadStatus): void {
    // Progress events repeat the state; only a change (or a new retry reason) is news.
    const line = describe(status);
    if (line === this.#lastState) return;
    this.#lastState = line;
    this.note(`push: ${line}`);
  }

  stop(): void {}
}

/** Bytes per second over the last few seconds: the whole-run average hides a link that just slowed down. */
class Rate {
  #samples: [number, number][] = [];

  add(value: number): number {
    const now = Date.now();
    this.#samples.push([now, value]);
    while (this.#samples.length > 2 && now - this.#samples[0]![0] > 5000) this.#samples.shift();
    const [t0, v0] = this.#samples[0]!;
    return now > t0 ? ((value - v0) * 1000) / (now - t0) : 0;
  }
}

class BarReporter implements Reporter {
  #bar: cliProgress.SingleBar | undefined;
  #phase: 'upload' | 'push' | undefined;
  #rate = new Rate();

  constructor(private readonly out: NodeJS.WriteStream) {}

  note(line: string): void {
    // A line in the middle of a bar would be overwritten: end the bar first.
    this.#end();
    this.out.write(`${line}\n`);
  }

  uploadProgress(sent: number, total: number): void {
    const rate = `${bytes(this.#rate.add(sent))}/s`;
    const payload = { done: bytes(sent), all: bytes(total), rate };
    if (this.#phase !== 'upload') {
      this.#start('upload', 'upload [{bar}] {percentage}% | {done} / {all} | {rate} | ETA {eta_formatted}', total, sent, payload);
    } else {
      this.#bar?.update(sent, payload);
    }
  }

  uploadDone(total: number): void {
    this.uploadProgress(total, total);
    this.#end();
  }

  push(status: UploadStatus): void {
    const done = status.state === 'verifying' || status.state === 'active' ? status.size : status.pushed;
    const payload = { done: bytes(done), all: bytes(status.size), state: describe(status) };
    if (this.#phase !== 'push') {
      this.#start('push', 'push   [{bar}] {percentage}% | {done} / {all} | {state}', status.size, done, payload);
    } else {
      this.#bar?.update(done, payload);
    }
  }

  stop(): void {
    this.#end();
  }

  #start(phase: 'upload' | 'push', format: string, total: number, value: number, payload: object): void {
    this.#end();
    this.#phase = phase;
    this.#rate = new Rate();
    this.#bar = new cliProgress.SingleBar(
      // gracefulExit off: its SIGTERM listener would keep the process alive; main handles signals.
      { stream: this.out, format, hideCursor: true, etaBuffer: 50, fps: 5, gracefulExit: false },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(total, value, payload);
  }

  #end(): void {
    this.#bar?.stop();
    this.#bar = undefined;
    this.#phase = undefined;
  }
}
