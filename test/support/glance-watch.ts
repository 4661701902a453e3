// An HTTP proxy in front of the real Glance that watches the image uploads passing through:
// how many PUTs of one image run at once, and a rate limit to keep a push running long enough.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';

export class GlanceWatch {
  /** The most PUTs of one image seen running at once, per image. */
  readonly mostAtOnce = new Map<string, number>();
  readonly #running = new Map<string, number>();
  /** Bytes a second for PUT bodies; null: unlimited. */
  rate: number | null = null;

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  static async start(glanceUrl: string): Promise<GlanceWatch> {
    const target = new URL(glanceUrl);
    let watch!: GlanceWatch;
    const server = http.createServer((req, res) => watch.#forward(req, res, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    watch = new GlanceWatch(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return watch;
  }

  #forward(req: http.IncomingMessage, res: http.ServerResponse, target: URL): void {
    const image = req.method === 'PUT' ? /^\/v2\/images\/([^/]+)\/file$/.exec(req.url ?? '')?.[1] : undefined;
    if (image) {
      const now = (this.#running.get(image) ?? 0) + 1;
      this.#running.set(image, now);
      this.mostAtOnce.set(image, Math.max(now, this.mostAtOnce.get(image) ?? 0));
    }
    let ended = false;
    const end = () => {
      if (ended || !image) return;
      ended = true;
      this.#running.set(image, (this.#running.get(image) ?? 1) - 1);
    };
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', end);
      },
    );
    upstream.on('error', () => {
      end();
      res.destroy();
    });
    req.on('close', () => {
      if (!req.complete) upstream.destroy();
      if (!req.complete) end();
    });
    req.pipe(image ? this.#throttle() : new Transform({ transform: (c, _e, cb) => cb(null, c) })).pipe(upstream);
  }

  #throttle(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc, callback) => {
        const rate = this.rate;
        if (rate === null) return callback(null, chunk);
        setTimeout(() => callback(null, chunk), (chunk.length / rate) * 1000);
      },
    });
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
