// A TCP proxy on 127.0.0.1 that can slow, stall or cut what passes through it.
import net from 'node:net';

export class TcpProxy {
  readonly #sockets = new Set<net.Socket>();
  #bytesPerSecond: number | null = null;
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
      const delay = this.#delayFor(chunk.length);
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
