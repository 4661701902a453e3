// `npm run bench`: the gateway against its references, one table on stdout, JSON in bench/results/.
// Knobs: SIZE (2GiB), BIG (8GiB), RUNS (3), ROWS (ingest,chunks,push,active,memory,concurrency,redis),
// CLIENTS (16), CLIENT_SIZE (256MiB), CHUNK (16MiB), BENCH_TMP (bench/tmp).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ALL_ROWS, formatSize, GiB, loadConfig, ROOT, type BenchConfig, type RowName } from './config.js';
import type { Context } from './context.js';
import { makeFile } from './files.js';
import { log } from './log.js';
import { openStack, type Stack } from './openstack.js';
import { line, renderTable, writeResults, type Row } from './report.js';
import { chunksRow } from './rows/chunks.js';
import { concurrencyRow } from './rows/concurrency.js';
import { memoryRow } from './rows/memory.js';
import { redisRow } from './rows/redis.js';
import { singlePatchRows } from './rows/single.js';
import { killAll } from './servers/spawn.js';

const TITLES: Record<RowName, string> = {
  ingest: '1 ingest, one PATCH',
  chunks: '2 ingest, chunks',
  push: '3 push to Glance',
  active: '4 time to active',
  memory: '5 memory',
  concurrency: '6 concurrency',
  redis: '7 Redis mode',
};

/** Sizes of the test files the chosen rows need. */
function fileSizes(cfg: BenchConfig): number[] {
  const want = new Set(cfg.rows);
  const sizes = new Set<number>();
  if (cfg.rows.some((r) => r !== 'concurrency')) sizes.add(cfg.size);
  if (want.has('memory')) sizes.add(cfg.big);
  if (want.has('concurrency')) sizes.add(cfg.clientSize);
  return [...sizes];
}

/** Test file + gateway copy + Glance copy of the biggest run, plus room for everything else. */
function checkDisk(cfg: BenchConfig): void {
  const want = new Set(cfg.rows);
  const biggest = Math.max(...fileSizes(cfg), want.has('concurrency') ? cfg.clients * cfg.clientSize : 0);
  const need = 3 * biggest + 10 * GiB;
  for (const dir of [cfg.tmpRoot, ROOT]) {
    const st = fs.statfsSync(dir);
    const free = st.bavail * st.bsize;
    if (free < need)
      throw new Error(
        `not enough free disk under ${dir}: ${formatSize(free)} free, ${formatSize(need)} needed (3 x ${formatSize(biggest)} + 10 GiB); lower SIZE/BIG or free space`,
      );
  }
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trimEnd();
  } catch {
    return '';
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const cfg = loadConfig();
  if (!fs.existsSync(path.join(ROOT, 'dist/main.js'))) throw new Error('dist/main.js is missing: run `npm run bench` (it builds first)');
  await fsp.mkdir(cfg.tmpRoot, { recursive: true });
  checkDisk(cfg);
  log(`SIZE ${formatSize(cfg.size)}, BIG ${formatSize(cfg.big)}, RUNS ${cfg.runs}, ROWS ${cfg.rows.join(',')}`);

  const tmp = await fsp.mkdtemp(path.join(cfg.tmpRoot, 'run-'));
  let stack: Stack | undefined;
  const cleanup = async () => {
    killAll();
    await stack?.deleteAll().catch(() => {});
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
    await stack?.stop().catch((err) => log(`stack stop failed: ${err}`));
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      log(`${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });

  const rows: Row[] = [];
  try {
    stack = await openStack();
    const files = new Map<number, string>();
    for (const size of fileSizes(cfg)) {
      const file = path.join(tmp, `data-${size}.bin`);
      log(`writing a ${formatSize(size)} test file`);
      await makeFile(file, size);
      files.set(size, file);
    }
    const ctx: Context = { cfg, stack, tmp, file: (size) => files.get(size)! };
    const want = new Set(cfg.rows);

    // Each step runs on its own: a failing row is reported, the others still run.
    const steps: Array<[RowName[], () => Promise<Row[]>]> = [
      [['ingest', 'push', 'active'], () => singlePatchRows(ctx, want)],
      [['chunks'], async () => [await chunksRow(ctx)]],
      [['memory'], async () => [await memoryRow(ctx)]],
      [['concurrency'], async () => [await concurrencyRow(ctx)]],
      [['redis'], async () => [await redisRow(ctx)]],
    ];
    for (const [keys, step] of steps) {
      const mine = keys.filter((k) => want.has(k));
      if (mine.length === 0) continue;
      try {
        rows.push(...(await step()));
      } catch (err) {
        log(`${mine.join(', ')} failed: ${err instanceof Error ? err.stack : err}`);
        for (const key of mine)
          rows.push({ key, title: TITLES[key], lines: [line('FAILED', 's', [])], note: String(err).split('\n')[0]!.slice(0, 200) });
      }
      await stack.deleteAll();
    }
  } finally {
    await cleanup();
  }

  rows.sort((a, b) => ALL_ROWS.indexOf(a.key) - ALL_ROWS.indexOf(b.key));
  const table = renderTable(rows);
  const file = await writeResults(
    {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      config: { ...cfg, tmpRoot: undefined },
      machine: { node: process.version, cpus: os.cpus().length, memoryBytes: os.totalmem(), loadavgAtEnd: os.loadavg() },
      gateway: { commit: git(['rev-parse', 'HEAD']), uncommittedInSrc: git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean) },
      table,
      rows,
    },
    startedAt,
  );
  process.stdout.write(`${table}\n`);
  log(`results: ${path.relative(ROOT, file)} and bench/results/latest.json`);
  if (rows.some((r) => r.lines.some((l) => l.subject === 'FAILED'))) process.exitCode = 1;
}

main().catch((err: unknown) => {
  killAll();
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
