// `npm start` with no configuration listens on 1080, stores in ./storage, says where Glance is.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './support/gateway-process.js';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

test('npm start with no configuration: port 1080, ./storage, Glance at 127.0.0.1:9292', { timeout: 120_000 }, async () => {
  assert.ok(await portFree(1080), 'port 1080 must be free for this test');
  // Only HOST is set: servers started by tests listen on 127.0.0.1 alone (the default is 0.0.0.0).
  const child = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const lines: string[] = [];
  try {
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line:\n${lines.join('\n')}`)), 100_000);
      const onData = (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          lines.push(line);
          if (line.includes('"address"')) {
            clearTimeout(timer);
            resolve(JSON.parse(line) as Record<string, unknown>);
          }
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => reject(new Error(`npm start exited with ${code}:\n${lines.join('\n')}`)));
    });
    assert.equal(listening.address, 'http://127.0.0.1:1080');
    assert.equal(listening.storageDir, path.join(ROOT, 'storage'));
    assert.equal(listening.glance, 'http://127.0.0.1:9292');
    const health = await fetch('http://127.0.0.1:1080/healthz');
    assert.equal(health.status, 200);
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGTERM'); // npm and the node it started
    await exited;
  }
});
