// A server as a child process that logs `"address":"http://…"` once it listens
// (the gateway's pino line, and the reference servers' own line).
import { spawn, type ChildProcess } from 'node:child_process';
import { ROOT } from '../config.js';
import { log } from '../log.js';
import { cpuSeconds, procBytes } from '../measure.js';

export interface ServerProcess {
  name: string;
  url: string;
  pid: number;
  /** The last lines it printed, for error messages. */
  output(): string;
  peakRss(): Promise<number>;
  /** CPU time used so far (user + system), in seconds. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();

/** Kill what is still running (on an error or Ctrl-C). */
export function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}

export async function spawnServer(name: string, args: string[], env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start:\n${lines.join('\n')}`));
    }, 30_000);
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(line);
        if (lines.length > 50) lines.shift();
        const m = /"address":"(http:\/\/[^"]+)"/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${lines.join('\n')}`));
    });
  });
  const pid = child.pid!;
  return {
    name,
    url,
    pid,
    output: () => lines.join('\n'),
    peakRss: () => procBytes(pid, 'VmHWM'),
    cpuSeconds: () => cpuSeconds(pid),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t0 = Date.now();
        const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(kill);
          if (Date.now() - t0 > 2000) log(`${name} took ${((Date.now() - t0) / 1000).toFixed(1)} s to stop`);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** The gateway, compiled (`npm run build` first), as it runs in production. */
export function spawnGateway(
  storageDir: string,
  openstack: { glanceUrl: string; authUrl: string },
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  // LOG_LEVEL=info: the listening address is an info line.
  const { glanceUrl, authUrl } = openstack;
  // MALLOC_ARENA_MAX as `npm start` sets it.
  const base = { STORAGE_DIR: storageDir, GLANCE_URL: glanceUrl, OS_AUTH_URL: authUrl, LOG_LEVEL: 'info', MALLOC_ARENA_MAX: '2' };
  return spawnServer('gateway', ['dist/main.js'], { ...base, ...env });
}

export function spawnSink(dir: string): Promise<ServerProcess> {
  return spawnServer('sink', ['--import', 'tsx', 'bench/servers/sink.ts'], { SINK_DIR: dir });
}

export function spawnBareTus(dir: string): Promise<ServerProcess> {
  return spawnServer('@tus/server', ['--import', 'tsx', 'bench/servers/tus.ts'], { TUS_DIR: dir });
}
