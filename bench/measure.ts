// Timing, statistics and process memory.
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import { promisify } from 'node:util';
import { MiB } from './config.js';

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stats(samples: number[]): Stats {
  if (samples.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export const now = (): number => performance.now();

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = now();
  const value = await fn();
  return { ms: now() - t0, value };
}

export const mibPerSec = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);

/** A field of /proc/PID/status (VmHWM: peak RSS, VmRSS: now), in bytes. */
export async function procBytes(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`${field} not in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** user + system CPU time of a process, in seconds (/proc/PID/stat, 100 ticks a second on Linux). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime: fields 14 and 15
}

/** CPU seconds of a process and all its descendants (Glance serves from a forked worker). */
export async function treeCpuSeconds(pid: number): Promise<number> {
  let total = await cpuSeconds(pid).catch(() => 0);
  const tasks = await fsp.readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tasks) {
    const children = await fsp.readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    for (const child of children.split(' ').filter(Boolean)) total += await treeCpuSeconds(Number(child));
  }
  return total;
}

/**
 * The order of the subjects in run i: rotated each run, so that each one goes first
 * (on a cold or warm page cache, after a push) as often as the others.
 */
export function rotation<T>(items: T[], run: number): T[] {
  const k = run % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * Flush every dirty page before a measured run, so that no subject pays for the writeback of
 * the bytes an earlier one stored (the kernel throttles writers once dirty memory piles up).
 */
export async function settle(): Promise<void> {
  await promisify(execFile)('sync');
}
