// The batching sink: `PUT /name` appends the body to SINK_DIR/name, gathering chunks and
// writing them with one writev per ~4 MiB, one write in flight while the next batch fills.
// No parsing, no hashing: the practical limit of ingest on this machine.
import fsp, { type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

const BATCH = 4 * 1024 * 1024;
const dir = process.env.SINK_DIR!;

async function sink(req: http.IncomingMessage, fh: FileHandle): Promise<void> {
  let batch: Buffer[] = [];
  let bytes = 0;
  let inFlight: Promise<unknown> = Promise.resolve();
  for await (const chunk of req as AsyncIterable<Buffer>) {
    batch.push(chunk);
    bytes += chunk.length;
    if (bytes >= BATCH) {
      await inFlight; // back-pressure: the socket waits while two batches are pending
      inFlight = fh.writev(batch);
      batch = [];
      bytes = 0;
    }
  }
  await inFlight;
  if (batch.length) await fh.writev(batch);
}

const server = http.createServer(async (req, res) => {
  const name = path.basename(new URL(req.url ?? '/', 'http://x').pathname);
  if (req.method !== 'PUT' || !name) {
    res.writeHead(405).end();
    return;
  }
  try {
    const fh = await fsp.open(path.join(dir, name), 'a');
    try {
      await sink(req, fh);
    } finally {
      await fh.close();
    }
    res.writeHead(204).end();
  } catch (err) {
    res.writeHead(500).end(String(err));
  }
});
server.requestTimeout = 0; // a 2 GiB body takes longer than Node's default 300 s on a slow box
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as { address: string; port: number };
  console.log(JSON.stringify({ address: `http://${address}:${port}` }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
