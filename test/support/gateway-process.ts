// The gateway as a child process (`src/main.ts` through tsx), for memory, crash and signal tests.
import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface GatewayProcess {
  child: ChildProcess;
  url: string;
  output: string[];
  /** Resident set size now, in bytes. */
  rss(): Promise<number>;
  /** Peak resident set size since the last resetPeak(), in bytes. */
  peakRss(): Promise<number>;
  resetPeak(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

async function procStatus(pid: number, field: string): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!match) throw new Error(`${field} not in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** The fake Glance answers Keystone's token validation too: a gateway pointed at it needs nothing else. */
export function withKeystone(env: Record<string, string>): Record<string, string> {
  return env.OS_AUTH_URL || !env.GLANCE_URL ? env : { ...env, OS_AUTH_URL: `${env.GLANCE_URL}/v3` };
}

export async function spawnGateway(env: Record<string, string>): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...withKeystone(env) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start:\n${output.join('\n')}`));
    }, 30_000);
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        output.push(line);
        const address = /"address":"(http:\/\/[^"]+)"/.exec(line);
        if (address) {
          clearTimeout(timer);
          resolve(address[1]!);
        }
      }
    };
    child.stdout!.on('data', onLine);
    child.stderr!.on('data', onLine);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}:\n${output.join('\n')}`));
    });
  });
  const pid = child.pid!;
  return {
    child,
    url,
    output,
    rss: () => procStatus(pid, 'VmRSS'),
    peakRss: () => procStatus(pid, 'VmHWM'),
    // Writing 5 to clear_refs resets the kernel's peak-RSS counter for the process.
    resetPeak: () => fsp.writeFile(`/proc/${pid}/clear_refs`, '5'),
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
}
