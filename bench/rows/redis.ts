// Row 7: one gateway with its state in Redis (records, locks, the BullMQ push queue, events)
// against the same gateway with local state, alternating: time to active of one PATCH, and the
// gateway's CPU per GiB from the first byte to active.
import { formatSize, GiB } from '../config.js';
import { freshDir, type Context } from '../context.js';
import { log } from '../log.js';
import { settle, stats } from '../measure.js';
import { line, type Row } from '../report.js';
import { startRedis } from '../servers/redis.js';
import { spawnGateway } from '../servers/spawn.js';
import { gatewayOnePatch, type GatewayTimes } from '../subjects.js';

export async function redisRow(ctx: Context): Promise<Row> {
  const { size, runs } = ctx.cfg;
  const file = ctx.file(size);
  const redis = await startRedis(await freshDir(ctx, 'redis-server'));
  const local = await spawnGateway(await freshDir(ctx, 'gateway-local'), ctx.stack);
  const shared = await spawnGateway(await freshDir(ctx, 'gateway-redis'), ctx.stack, { REDIS_URL: redis.url });
  const times: Record<'local' | 'redis', GatewayTimes[]> = { local: [], redis: [] };
  try {
    for (let run = 0; run < runs; run++) {
      const order = run % 2 ? (['redis', 'local'] as const) : (['local', 'redis'] as const);
      for (const mode of order) {
        await settle();
        const t = await gatewayOnePatch(ctx, mode === 'local' ? local : shared, file);
        times[mode].push(t);
        log(`Redis mode, run ${run + 1}/${runs}, ${mode}: to active ${(t.activeMs / 1000).toFixed(2)} s, gateway CPU ${(t.cpu.gatewayIngest + t.cpu.gatewayPush).toFixed(2)} s`);
      }
    }
  } finally {
    await Promise.all([local.stop(), shared.stop()]);
    await redis.stop();
  }
  const seconds = (ts: GatewayTimes[]) => ts.map((t) => t.activeMs / 1000);
  const cpuPerGiB = (ts: GatewayTimes[]) => ts.map((t) => (t.cpu.gatewayIngest + t.cpu.gatewayPush) / (size / GiB));
  const ref = line('local state, first byte -> active', 's', seconds(times.local), { ref: true, bytes: size });
  const shared_ = line('Redis state, first byte -> active', 's', seconds(times.redis), { bytes: size });
  shared_.ratio = shared_.stats.median / ref.stats.median;
  shared_.check = { target: '<= 1.05x', pass: shared_.ratio <= 1.05 };
  const cpuLocal = stats(cpuPerGiB(times.local)).median;
  const cpuRedis = stats(cpuPerGiB(times.redis)).median;
  const cpu = line('gateway CPU s/GiB, Redis / local', 'count', [Number((cpuRedis / cpuLocal).toFixed(3))]);
  cpu.ratio = cpuRedis / cpuLocal;
  cpu.check = { target: '<= 1.05x', pass: cpu.ratio <= 1.05 };
  return {
    key: 'redis',
    title: `7 Redis mode, ${formatSize(size)}`,
    lines: [ref, shared_, cpu],
    note: `gateway CPU s/GiB, first byte to active: local ${cpuLocal.toFixed(2)}, Redis ${cpuRedis.toFixed(2)}`,
    raw: times,
  };
}
