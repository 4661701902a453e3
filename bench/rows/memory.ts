// Row 5: peak RSS of the gateway over a whole upload + push, in a fresh process per size
// (VmHWM never goes down, so a fresh process makes it that run's peak).
import { formatSize, MiB } from '../config.js';
import { freshDir, type Context } from '../context.js';
import { log } from '../log.js';
import { settle } from '../measure.js';
import { line, type Row } from '../report.js';
import { spawnGateway } from '../servers/spawn.js';
import { gatewayOnePatch, type GatewayTimes } from '../subjects.js';

async function peakOf(ctx: Context, size: number): Promise<{ peak: number; times: GatewayTimes }> {
  const dir = await freshDir(ctx, `gateway-memory-${size}`);
  const gw = await spawnGateway(dir, ctx.stack);
  try {
    await settle();
    const times = await gatewayOnePatch(ctx, gw, ctx.file(size));
    const peak = (await gw.peakRss()) / MiB;
    log(
      `memory, ${formatSize(size)}: peak RSS ${peak.toFixed(1)} MiB (PATCH ${(times.ingestMs / 1000).toFixed(2)} s, push ${(times.pushMs / 1000).toFixed(2)} s)`,
    );
    return { peak, times };
  } finally {
    await gw.stop();
  }
}

export async function memoryRow(ctx: Context): Promise<Row> {
  const { size, big } = ctx.cfg;
  const small = await peakOf(ctx, size);
  const large = await peakOf(ctx, big);
  const ratio = large.peak / small.peak;
  const bigLine = line(`gateway peak RSS, ${formatSize(big)} run`, 'MiB', [large.peak]);
  bigLine.ratio = ratio;
  bigLine.check = { target: '< 150 MiB, <= 1.10x', pass: large.peak < 150 && ratio <= 1.1 };
  return {
    key: 'memory',
    title: `5 memory (upload + push)`,
    lines: [line(`gateway peak RSS, ${formatSize(size)} run`, 'MiB', [small.peak], { ref: true }), bigLine],
    note: `ratio: ${formatSize(big)} peak / ${formatSize(size)} peak; ${formatSize(big)} run: PATCH ${(large.times.ingestMs / 1000).toFixed(1)} s, push ${(large.times.pushMs / 1000).toFixed(1)} s`,
  };
}
