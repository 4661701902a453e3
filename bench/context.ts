// What every row gets: the stack, the config, the test files and a scratch directory.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { BenchConfig } from './config.js';
import type { Stack } from './openstack.js';

export interface Context {
  cfg: BenchConfig;
  stack: Stack;
  /** Scratch directory of this bench run (removed at the end). */
  tmp: string;
  /** Test files by size in bytes. */
  file(size: number): string;
}

/** A fresh, empty directory under the scratch directory. */
export async function freshDir(ctx: Context, name: string): Promise<string> {
  const dir = path.join(ctx.tmp, name);
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  return dir;
}

/** Remove what a reference server wrote, so disk use stays at one copy per run. */
export async function emptyDir(dir: string): Promise<void> {
  for (const entry of await fsp.readdir(dir)) await fsp.rm(path.join(dir, entry), { recursive: true, force: true });
}
