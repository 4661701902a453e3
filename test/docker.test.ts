// The Dockerfile, checked without a Docker engine: scripts/docker-check.sh plays its stages in
// temp dirs (two `npm ci`, the build, the runtime stage as an unprivileged user) and asks the
// started gateway /healthz, /readyz and the HEALTHCHECK, then stops it with SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './support/gateway.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const script = path.join(repo, 'scripts/docker-check.sh');

function run(env: Record<string, string> = {}, timeoutMs = 170_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that a timeout takes the npm and node children down too.
    const child = spawn('bash', [script], { env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n(test: killed after ${timeoutMs} ms)`;
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test('the Dockerfile builds, starts as an unprivileged user, answers /healthz, and stops on SIGTERM', { timeout: 180_000 }, async () => {
  const { code, output } = await run();
  assert.equal(code, 0, output);
  assert.match(output, /\/healthz: 200/);
  assert.match(output, /processes run as \S+/);
  assert.doesNotMatch(output, /processes run as root/);
  assert.match(output, /"storage":"ok"/);
  assert.match(output, /stopped on SIGTERM, exit status 0/);
  assert.match(output, /docker-check: OK$/m);
});

const notRoot = process.getuid?.() !== 0 ? 'needs root: without it everything runs as the same user' : false;

test('the check fails when the image cannot write its storage', { timeout: 180_000, skip: notRoot }, async () => {
  // The same Dockerfile without the chown of /app/storage: the unprivileged user cannot start.
  const dir = await tempDir('gw-dockerfile-');
  try {
    const dockerfile = await fsp.readFile(path.join(repo, 'Dockerfile'), 'utf8');
    const broken = dockerfile.replace(/ && chown -R \S+ \/app\/storage/, '');
    assert.notEqual(broken, dockerfile, 'the Dockerfile still chowns /app/storage');
    await fsp.writeFile(path.join(dir, 'Dockerfile'), broken);
    const { code, output } = await run({ DOCKERFILE: path.join(dir, 'Dockerfile'), DOCKER_CONTEXT: repo });
    assert.notEqual(code, 0, output);
    assert.match(output, /FAIL: .*(exited before answering|storage)/, output);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
