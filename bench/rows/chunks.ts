// Row 2: the whole file in 16 MiB chunks with tus-js-client (gateway, bare @tus/server)
// against the sink taking the same bytes as sequential 16 MiB PUTs.
import { formatSize } from '../config.js';
import { freshDir, type Context } from '../context.js';
import { log } from '../log.js';
import { mibPerSec, rotation, settle } from '../measure.js';
import { line, type Row } from '../report.js';
import { spawnBareTus, spawnGateway, spawnSink, type ServerProcess } from '../servers/spawn.js';
import { gatewayTusJs, sinkChunks, tusTusJs } from '../subjects.js';

export async function chunksRow(ctx: Context): Promise<Row> {
  const { size, runs, chunkSize } = ctx.cfg;
  const file = ctx.file(size);
  const gwDir = await freshDir(ctx, 'gateway-chunks');
  const sinkDir = await freshDir(ctx, 'sink');
  const tusDir = await freshDir(ctx, 'tus');
  const servers: ServerProcess[] = [];
  try {
    const gw = await spawnGateway(gwDir, ctx.stack, { PUSH_STREAMING: '0' }); // ingest alone, as row 1
    servers.push(gw);
    const sink = await spawnSink(sinkDir);
    servers.push(sink);
    const bare = await spawnBareTus(tusDir);
    servers.push(bare);

    const samples: Record<string, number[]> = { gateway: [], sink: [], tus: [] };
    const subjects: Array<[keyof typeof samples, () => Promise<number>]> = [
      ['gateway', () => gatewayTusJs(ctx, gw, file)],
      ['sink', () => sinkChunks(ctx, sink, sinkDir, file)],
      ['tus', () => tusTusJs(ctx, bare, tusDir, file)],
    ];
    for (let run = 0; run < runs; run++)
      for (const [name, measure] of rotation(subjects, run)) {
        await settle();
        const ms = await measure();
        samples[name]!.push(ms / 1000);
        log(`${formatSize(chunkSize)} chunks, run ${run + 1}/${runs}, ${name}: ${(ms / 1000).toFixed(2)} s (${mibPerSec(size, ms).toFixed(0)} MiB/s)`);
      }

    const chunk = formatSize(chunkSize);
    const sinkLine = line(`batching sink, ${chunk} PUTs`, 's', samples.sink!, { bytes: size, ref: true });
    const gwLine = line('gateway, tus-js-client', 's', samples.gateway!, { bytes: size });
    gwLine.ratio = gwLine.stats.median / sinkLine.stats.median;
    gwLine.check = { target: '<= 1.4x', pass: gwLine.ratio <= 1.4 };
    const tusLine = line('bare @tus/server, tus-js-client', 's', samples.tus!, { bytes: size });
    tusLine.ratio = tusLine.stats.median / sinkLine.stats.median;
    return {
      key: 'chunks',
      title: `2 ingest, ${chunk} chunks, ${formatSize(size)}`,
      lines: [sinkLine, gwLine, tusLine],
      note: 'tus times include the creation POST',
    };
  } finally {
    for (const srv of servers) await srv.stop();
  }
}
