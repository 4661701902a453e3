import type { Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UploadEvent, UploadEvents } from '../state/upload-events.js';
import type { UploadState } from '../state/upload-record.js';

export interface MetricsSources {
  events: UploadEvents;
  queueDepth: () => Promise<number>;
  server: Server;
}

/**
 * Prometheus metrics, fed by the upload events (as plain data, like tusd's hooks) and the
 * store's byte counts; names follow tusd's (`tusd_uploads_finished` …) with our prefix.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #last = new Map<string, { state: UploadState; pushed: number; pushingSince?: number }>();
  readonly #created: Counter;
  readonly #finished: Counter;
  readonly #terminated: Counter;
  readonly #received: Counter;
  readonly #pushes: Counter<'outcome' | 'reason'>;
  readonly #pushed: Counter;
  readonly #withoutTrust: Counter<'reason'>;
  readonly #duration: Histogram;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#created = new Counter({ name: 'gateway_uploads_created_total', help: 'Uploads created', registers });
    this.#finished = new Counter({ name: 'gateway_uploads_finished_total', help: 'Uploads whose last byte arrived', registers });
    this.#terminated = new Counter({
      name: 'gateway_uploads_terminated_total',
      help: 'Unfinished uploads removed (terminated, expired or refused)',
      registers,
    });
    this.#received = new Counter({ name: 'gateway_bytes_received_total', help: 'Bytes stored from clients', registers });
    this.#pushes = new Counter({
      name: 'gateway_pushes_total',
      help: 'Pushes to Glance by outcome (started, succeeded, failed) and failure reason',
      labelNames: ['outcome', 'reason'],
      registers,
    });
    this.#pushed = new Counter({ name: 'gateway_bytes_pushed_total', help: 'Bytes sent to Glance', registers });
    this.#withoutTrust = new Counter({
      name: 'gateway_uploads_without_trust_total',
      help: 'Uploads whose push needs the client: no service user (disabled), or no trust for its token (refused)',
      labelNames: ['reason'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'gateway_push_duration_seconds',
      help: 'From the push start to the image active',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
      registers,
    });
    new Gauge({
      name: 'gateway_push_queue_depth',
      help: 'Pushes waiting for a slot or running',
      registers,
      async collect() {
        this.set(await sources.queueDepth());
      },
    });
    new Gauge({
      name: 'gateway_open_connections',
      help: 'Open HTTP connections',
      registers,
      async collect() {
        this.set(await new Promise<number>((r) => sources.server.getConnections((_e, n) => r(n ?? 0))));
      },
    });
    sources.events.subscribe('*', (event) => this.#observe(event));
  }

  uploadWithoutTrust(reason: 'disabled' | 'refused'): void {
    this.#withoutTrust.inc({ reason });
  }

  bytesReceived(bytes: number): void {
    this.#received.inc(bytes);
  }

  #observe(event: UploadEvent): void {
    if (event.kind !== 'shutdown' && event.remote) return; // metrics are per instance: another counts its own
    if (event.kind === 'removed') {
      if (this.#last.get(event.id)?.state === 'receiving') this.#terminated.inc();
      this.#last.delete(event.id);
      return;
    }
    if (event.kind === 'progress') {
      const last = this.#last.get(event.id);
      if (last && event.pushed !== undefined) {
        if (event.pushed > last.pushed) this.#pushed.inc(event.pushed - last.pushed);
        last.pushed = event.pushed; // a new attempt starts again from 0
      }
      return;
    }
    if (event.kind !== 'state') return;
    const { id, state, pushed, error } = event.record;
    const last = this.#last.get(id);
    if (!last) {
      if (state === 'receiving') this.#created.inc();
      this.#last.set(id, { state, pushed: 0 });
      return;
    }
    if (last.state === state) return;
    if (last.state === 'receiving') this.#finished.inc();
    if (state === 'pushing') {
      this.#pushes.inc({ outcome: 'started', reason: '' });
      last.pushingSince ??= Date.now();
    }
    if (state === 'verifying' && pushed > last.pushed) {
      this.#pushed.inc(pushed - last.pushed); // the bytes after the last progress event
      last.pushed = pushed;
    }
    if (state === 'active') {
      this.#pushes.inc({ outcome: 'succeeded', reason: '' });
      if (last.pushingSince) this.#duration.observe((Date.now() - last.pushingSince) / 1000);
    }
    if (state === 'failed') this.#pushes.inc({ outcome: 'failed', reason: error?.code ?? 'unknown' });
    last.state = state;
  }
}
