// The Dockerfile, checked without a Docker engine by scripts/docker-check.sh: its invariants read
// from the file, then its runtime stage played here (build, production dependencies only,
// `npm start` as an unprivileged user), asked /healthz, /readyz and the HEALTHCHECK, and stopped
// with SIGTERM.
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

/** Runs the check on the Dockerfile as `edit` changes it. */
async function runEdited(edit: (dockerfile: string) => string): Promise<{ code: number | null; output: string }> {
  const dir = await tempDir('gw-dockerfile-');
  try {
    const dockerfile = await fsp.readFile(path.join(repo, 'Dockerfile'), 'utf8');
    const broken = edit(dockerfile);
    assert.notEqual(broken, dockerfile, 'the edit changed nothing: the Dockerfile no longer has that line');
    await fsp.writeFile(path.join(dir, 'Dockerfile'), broken);
    return await run({ DOCKERFILE: path.join(dir, 'Dockerfile') });
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

test('the Dockerfile builds, starts as an unprivileged user, answers /healthz, and stops on SIGTERM', { timeout: 180_000 }, async () => {
  const { code, output } = await run();
  assert.equal(code, 0, output);
  assert.match(output, /two stages on node:24-bookworm-slim/);
  assert.match(output, /\/healthz: 200/);
  assert.match(output, /processes run as \S+/);
  assert.doesNotMatch(output, /processes run as root/);
  assert.match(output, /node dist\/main\.js/);
  assert.match(output, /"storage":"ok"/);
  assert.match(output, /HEALTHCHECK: ok/);
  assert.match(output, /stopped on SIGTERM, exit status 0/);
  assert.match(output, /docker-check: OK$/m);
});

const broken: [string, (d: string) => string, RegExp][] = [
  ['a stage on Node 20', (d) => d.replace(/^FROM node:24-bookworm-slim$/m, 'FROM node:20-bookworm-slim'), /a stage on node:20-bookworm-slim/],
  ['dev dependencies at runtime', (d) => d.replace(/npm ci --omit=dev/, 'npm ci'), /npm ci --omit=dev/],
  ['storage not given to the node user', (d) => d.replace(/ && chown -R \S+ \/app\/storage/, ''), /\/app\/storage to the node user/],
  ['running as root', (d) => d.replace(/^USER node\n/m, ''), /USER node/],
  ['no storage volume', (d) => d.replace(/^VOLUME .*\n/m, ''), /VOLUME/],
  ['a HEALTHCHECK that does not ask /healthz', (d) => d.replace(/\/healthz/, '/'), /HEALTHCHECK that asks \/healthz/],
  ['a shell-form CMD', (d) => d.replace(/^CMD \[.*\]$/m, 'CMD npm start'), /CMD \["npm", "start"\]/],
];
for (const [name, edit, message] of broken) {
  test(`the check refuses a Dockerfile with ${name}`, { timeout: 30_000 }, async () => {
    const { code, output } = await runEdited(edit);
    assert.notEqual(code, 0, output);
    assert.match(output, /FAIL: /, output);
    assert.match(output, message, output);
    assert.doesNotMatch(output, /build: npm run build/, 'it fails on reading the Dockerfile, before the build');
  });
}

test('the check runs the HEALTHCHECK: one that asks the wrong port fails it', { timeout: 180_000 }, async () => {
  const { code, output } = await runEdited((d) => d.replace(/process\.env\.PORT\|\|1080/, '1'));
  assert.notEqual(code, 0, output);
  assert.match(output, /\/healthz: 200/, output);
  assert.match(output, /FAIL: HEALTHCHECK failed/, output);
});
