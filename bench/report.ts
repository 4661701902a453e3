// The results: one table on stdout, the same data as JSON under bench/results/.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { MiB, ROOT, type RowName } from './config.js';
import { stats, type Stats } from './measure.js';

export type Unit = 's' | 'MiB' | 'MiB/s' | 'count';

export interface Line {
  subject: string;
  unit: Unit;
  samples: number[]; // seconds, MiB, MiB/s or a count, as `unit` says
  stats: Stats;
  /** bytes moved per sample, to print a rate beside times */
  bytes?: number;
  ref?: boolean;
  ratio?: number;
  /** the target this line's ratio is judged against, and the verdict */
  check?: { target: string; pass: boolean };
}

export interface Row {
  key: RowName;
  title: string;
  lines: Line[];
  note?: string;
  /** per-run details, JSON only */
  raw?: unknown;
}

export function line(subject: string, unit: Unit, samples: number[], extra: Partial<Line> = {}): Line {
  return { subject, unit, samples, stats: stats(samples), ...extra };
}

const num = (v: number, unit: Unit) =>
  !Number.isFinite(v) ? '-' : unit === 'count' ? String(v) : unit === 's' ? `${v.toFixed(2)} s` : `${v.toFixed(1)}`;

export function renderTable(rows: Row[]): string {
  const head = ['row', 'subject', 'n', 'median', 'min', 'max', 'MiB/s', 'ratio', 'target', 'result'];
  const cells = (l: Line): string[] => {
    const unit = l.unit === 'MiB' ? ' MiB' : l.unit === 'MiB/s' ? ' MiB/s' : '';
    return [
      l.subject + (l.ref ? ' (ref)' : ''),
      l.stats.n ? String(l.stats.n) : '-',
      num(l.stats.median, l.unit) + (Number.isFinite(l.stats.median) ? unit : ''),
      num(l.stats.min, l.unit),
      num(l.stats.max, l.unit),
      l.unit === 's' && l.bytes ? (l.bytes / MiB / l.stats.median).toFixed(0) : '',
      l.ratio === undefined ? '' : Number.isFinite(l.ratio) ? `${l.ratio.toFixed(2)}x` : '-',
      l.check?.target ?? '',
      l.check ? (l.check.pass ? 'PASS' : 'FAIL') : '',
    ];
  };
  const grid = rows.map((row) => row.lines.map((l, i) => [i === 0 ? row.title : '', ...cells(l)]));
  const widths = head.map((h, c) => Math.max(h.length, ...grid.flat().map((r) => r[c]!.length)));
  const fmt = (r: string[]) =>
    r.map((cell, c) => (c >= 2 && c <= 7 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  const out = [fmt(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  rows.forEach((row, i) => {
    if (i > 0) out.push('');
    out.push(...grid[i]!.map(fmt));
    if (row.note) out.push(`${''.padEnd(widths[0]!)}  ${row.note}`);
  });
  return out.join('\n');
}

/** bench/results/<timestamp>.json and bench/results/latest.json; the first path. */
export async function writeResults(data: unknown, startedAt: Date): Promise<string> {
  const dir = path.join(ROOT, 'bench/results');
  await fsp.mkdir(dir, { recursive: true });
  const text = `${JSON.stringify(data, null, 2)}\n`;
  const file = path.join(dir, `${startedAt.toISOString().replace(/:/g, '-')}.json`);
  await fsp.writeFile(file, text);
  await fsp.writeFile(path.join(dir, 'latest.json'), text);
  return file;
}
