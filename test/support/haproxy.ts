// Debian's haproxy in front of several gateways: round-robin, health checks, no stickiness.
import { type ChildProcess, spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './redis.js';

export interface Haproxy {
  readonly url: string;
  stop(): Promise<void>;
}

/** `servers`: the gateways' base URLs. Each request goes to the next healthy one. */
export async function startHaproxy(servers: string[]): Promise<Haproxy> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-haproxy-'));
  const port = await freePort();
  const lines = [
    'global',
    '  maxconn 256',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 120s',
    '  timeout server 120s',
    '  option http-server-close', // every request is balanced on its own, even on a kept-alive connection
    'frontend gateways',
    `  bind 127.0.0.1:${port}`,
    '  default_backend pool',
    'backend pool',
    '  balance roundrobin',
    '  option httpchk GET /healthz',
    '  default-server inter 500ms fall 2 rise 1',
    ...servers.map((s, i) => `  server gw${i} ${new URL(s).host} check`),
  ];
  const cfg = path.join(dir, 'haproxy.cfg');
  await fsp.writeFile(cfg, `${lines.join('\n')}\n`);
  const child: ChildProcess = spawn('haproxy', ['-f', cfg, '-db'], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error('haproxy did not start');
    await sleep(50);
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        });
      }
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
