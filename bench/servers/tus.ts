// A bare @tus/server with @tus/file-store at /files: no hooks, no locker options, defaults.
import http from 'node:http';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const tus = new Server({ path: '/files', datastore: new FileStore({ directory: process.env.TUS_DIR! }) });
const server = http.createServer((req, res) => void tus.handle(req, res));
server.requestTimeout = 0; // as the gateway: a long PATCH must not be cut at 300 s
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as { address: string; port: number };
  console.log(JSON.stringify({ address: `http://${address}:${port}` }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
