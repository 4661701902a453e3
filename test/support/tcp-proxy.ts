// A TCP proxy on 127.0.0.1 that can slow, stall or cut what passes through it.
import net from 'node:net';

export class TcpProxy {
  readonly #sockets = new Set<net.Socket>();
  #bytesPerSecond: number | null = null;
  #faults: LinkFaults = {};
  #forwarded = 0;
  #nextCut = Infinity;
  #nextStall = Infinity;
  /** How many connections the proxy cut, and how often it stalled. */
  readonly stats = { cuts: 0, stalls: 0 };
  #budget = 0;
  #refilledAt = Date.now();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetUrl: string): Promise<TcpProxy> {
    const target = new URL(targetUrl);
    let proxy!: TcpProxy;
    const server = net.createServer((client) => proxy.connect(client, target.hostname, Number(target.port)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Limit client-to-target throughput across all connections (null: unlimited). */
  setRate(bytesPerSecond: number | null): void {
    this.#bytesPerSecond = bytesPerSecond;
  }

  /** Cut and stall client-to-target traffic at random byte counts, like a flaky link. */
  setFaults(faults: LinkFaults): void {
    this.#faults = faults;
    this.#nextCut = faults.cutEvery ? this.#forwarded + between(faults.cutEvery) : Infinity;
    this.#nextStall = faults.stallEvery ? this.#forwarded + between(faults.stallEvery.bytes) : Infinity;
  }

  /** Destroy every open connection, as a broken link would. */
  cutAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private connect(client: net.Socket, host: string, port: number): void {
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      this.#forwarded += chunk.length;
      if (this.#forwarded >= this.#nextCut) {
        this.#nextCut = this.#forwarded + between(this.#faults.cutEvery!);
        this.stats.cuts++;
        client.destroy();
        upstream.destroy();
        return;
      }
      let delay = this.#delayFor(chunk.length);
      if (this.#forwarded >= this.#nextStall) {
        const stall = this.#faults.stallEvery!;
        this.#nextStall = this.#forwarded + between(stall.bytes);
        this.stats.stalls++;
        delay += stall.ms;
      }
      if (!upstream.write(chunk) || delay > 0) {
        client.pause();
        const resume = () => client.resume();
        if (delay > 0) setTimeout(() => (upstream.writableNeedDrain ? upstream.once('drain', resume) : resume()), delay);
        else upstream.once('drain', resume);
      }
    });
  }

  /** Token bucket: how long to hold the sender after passing `bytes`. */
  #delayFor(bytes: number): number {
    if (this.#bytesPerSecond === null) return 0;
    const now = Date.now();
    this.#budget = Math.min(this.#bytesPerSecond, this.#budget + ((now - this.#refilledAt) / 1000) * this.#bytesPerSecond);
    this.#refilledAt = now;
    this.#budget -= bytes;
    return this.#budget >= 0 ? 0 : Math.ceil((-this.#budget / this.#bytesPerSecond) * 1000);
  }
}

export interface LinkFaults {
  /** Cut the connection after a random number of bytes in this range, again and again. */
  cutEvery?: [number, number];
  /** Hold the sender for `ms` after a random number of bytes in this range. */
  stallEvery?: { bytes: [number, number]; ms: number };
}

function between([min, max]: [number, number]): number {
  return min + Math.floor(Math.random() * (max - min));
}
