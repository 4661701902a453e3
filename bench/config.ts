// Environment knobs of `npm run bench`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export const ALL_ROWS = ['ingest', 'chunks', 'push', 'active', 'memory', 'concurrency', 'redis'] as const;
export type RowName = (typeof ALL_ROWS)[number];

export interface BenchConfig {
  size: number; // rows 1-4, and the small run of row 5
  big: number; // the big run of row 5
  runs: number;
  rows: RowName[];
  chunkSize: number; // rows 2 and 6
  clients: number; // row 6
  clientSize: number; // row 6, per client
  tmpRoot: string;
}

/** "2GiB", "256MiB", "512M", "1g" or plain bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = { '': 1, k: 1024, m: MiB, g: GiB, t: 1024 * GiB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * unit);
}

export function formatSize(bytes: number): string {
  if (bytes >= GiB) return `${+(bytes / GiB).toFixed(1)} GiB`;
  if (bytes >= MiB) return `${+(bytes / MiB).toFixed(1)} MiB`;
  return `${bytes} B`;
}

export function loadConfig(env = process.env): BenchConfig {
  const rows = (env.ROWS ?? ALL_ROWS.join(','))
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  for (const r of rows) if (!ALL_ROWS.includes(r as RowName)) throw new Error(`ROWS: unknown row ${r} (known: ${ALL_ROWS.join(', ')})`);
  const runs = Number(env.RUNS ?? 3);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`RUNS: not a positive integer: ${env.RUNS}`);
  return {
    size: parseSize(env.SIZE ?? '2GiB'),
    big: parseSize(env.BIG ?? '8GiB'),
    runs,
    rows: rows as RowName[],
    chunkSize: parseSize(env.CHUNK ?? '16MiB'),
    clients: Number(env.CLIENTS ?? 16),
    clientSize: parseSize(env.CLIENT_SIZE ?? '256MiB'),
    tmpRoot: path.resolve(env.BENCH_TMP ?? path.join(ROOT, 'bench/tmp')),
  };
}
