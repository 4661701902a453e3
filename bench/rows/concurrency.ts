// Row 6: N clients at once (tus-js-client, 16 MiB chunks), each into its own image,
// against one client alone. Aggregate = bytes of the uploads that succeeded / wall time
// until the last one's final PATCH answered.
import { formatSize, MiB } from '../config.js';
import { tusJsUpload } from '../clients.js';
import { freshDir, type Context } from '../context.js';
import { log } from '../log.js';
import { now, settle } from '../measure.js';
import { line, type Row } from '../report.js';
import { spawnGateway, type ServerProcess } from '../servers/spawn.js';
import { awaitActive } from '../subjects.js';

interface Round {
  mibPerSec: number;
  errors: string[];
}

async function round(ctx: Context, gw: ServerProcess, clients: number): Promise<Round> {
  const { clientSize, chunkSize } = ctx.cfg;
  const file = ctx.file(clientSize);
  const token = await ctx.stack.token();
  const images: string[] = [];
  for (let i = 0; i < clients; i++) images.push(await ctx.stack.createImage(`bench-concurrency-${i}`));
  const t0 = now();
  const results = await Promise.allSettled(
    images.map((imageId) => tusJsUpload(`${gw.url}/files/`, file, chunkSize, { metadata: { image_id: imageId }, token })),
  );
  const wall = now() - t0;
  const errors: string[] = [];
  // Every push must reach `active` too (outside the timing); a failed one is an error.
  await Promise.all(
    results.map(async (r, i) => {
      if (r.status === 'rejected') {
        errors.push(`upload ${i}: ${String(r.reason).slice(0, 200)}`);
        await ctx.stack.deleteImage(images[i]!);
        return;
      }
      await awaitActive(ctx, r.value.url, token, images[i]!).catch((err) => errors.push(`push ${i}: ${String(err).slice(0, 200)}`));
    }),
  );
  await ctx.stack.deleteAll(); // images of failed pushes
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  return { mibPerSec: (ok * clientSize) / MiB / (wall / 1000), errors };
}

export async function concurrencyRow(ctx: Context): Promise<Row> {
  const { runs, clients, clientSize } = ctx.cfg;
  const dir = await freshDir(ctx, 'gateway-concurrency');
  const gw = await spawnGateway(dir, ctx.stack);
  try {
    const single: number[] = [];
    const many: number[] = [];
    const errors: string[] = [];
    for (let run = 0; run < runs; run++) {
      const order = run % 2 ? [clients, 1] : [1, clients];
      for (const n of order) {
        await settle();
        const r = await round(ctx, gw, n);
        (n === 1 ? single : many).push(r.mibPerSec);
        errors.push(...r.errors);
        log(`concurrency, run ${run + 1}/${runs}, ${n} client(s): ${r.mibPerSec.toFixed(0)} MiB/s, ${r.errors.length} error(s)`);
        for (const e of r.errors) log(`  ${e}`);
      }
    }
    const one = line(`1 client, ${formatSize(clientSize)}`, 'MiB/s', single, { ref: true });
    const all = line(`${clients} clients x ${formatSize(clientSize)}, aggregate`, 'MiB/s', many);
    all.ratio = all.stats.median / one.stats.median;
    all.check = { target: '0 errors, >= 0.9x', pass: errors.length === 0 && all.ratio >= 0.9 };
    const errLine = line('errors (uploads + pushes)', 'count', [errors.length]);
    return {
      key: 'concurrency',
      title: `6 concurrency`,
      lines: [one, all, errLine],
      ...(errors.length ? { note: `first error: ${errors[0]}` } : {}),
    };
  } finally {
    await gw.stop();
  }
}
