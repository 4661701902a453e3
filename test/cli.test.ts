// The glance-upload command line client, run as a child process against the in-process gateway.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runCli } from './support/cli.js';
import { FakeGlance } from './support/fake-glance.js';
import { glanceHashes, makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, type TestGateway, uploadIdsForImage } from './support/gateway.js';
import { TUS } from './support/http.js';
import { qemuImg } from './support/qemu.js';
import { TcpProxy } from './support/tcp-proxy.js';

let glance: FakeGlance;
let gw: TestGateway;
let dir: string;

before(async () => {
  glance = await FakeGlance.start();
  gw = await startGateway({ GLANCE_URL: glance.url });
  dir = await tempDir('gw-cli-');
});
after(async () => {
  await gw.close();
  await glance.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

interface JsonResult {
  uploadId: string;
  imageId: string;
  state: string;
  checksum: string | null;
  os_hash_value: string | null;
  size: number;
}

/** A fresh state file per test, so no test resumes another's upload. */
async function cliEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const stateDir = await fsp.mkdtemp(path.join(dir, 'state-'));
  return { GLANCE_UPLOAD_STATE: path.join(stateDir, 'uploads.json'), OS_TOKEN: 'token-a', ...extra };
}

/** The upload URLs tus-js-client keeps in the state file (FileUrlStorage's JSON). */
async function storedUploadUrls(stateFile: string): Promise<string[]> {
  const text = await fsp.readFile(stateFile, 'utf8').catch(() => '{}');
  const data = JSON.parse(text || '{}') as Record<string, { uploadUrl?: string }>;
  return Object.values(data).flatMap((v) => (v.uploadUrl ? [v.uploadUrl] : []));
}

async function headOffset(id: string): Promise<number> {
  const res = await fetch(`${gw.url}/files/${id}`, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
  assert.equal(res.status, 200);
  return Number(res.headers.get('upload-offset'));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}


test('killed mid-upload (SIGKILL), the same command run again resumes and ends active', async () => {
  const SIZE = 48 * MiB;
  const file = await makeFile(dir, 'resume.raw', SIZE);
  const { md5 } = await glanceHashes(file.path);
  const image = glance.createImage('project-a');
  const proxy = await TcpProxy.start(gw.url);
  try {
    proxy.setRate(8 * MiB); // ~6 s for the whole file: time to kill it half way
    const env = await cliEnv();
    const args = [file.path, '--image-id', image.id, '--gateway', proxy.url, '--chunk-size', '4MiB', '--json'];

    const first = runCli(args, env);
    const uploadUrl = await until('the upload URL in the state file', async () => (await storedUploadUrls(env.GLANCE_UPLOAD_STATE!))[0]);
    const id = uploadUrl.split('/').pop()!;
    await until('8 MiB on the gateway', async () => ((await headOffset(id)) >= 8 * MiB ? true : undefined));
    first.child.kill('SIGKILL');
    const killed = await first.done;
    assert.equal(killed.signal, 'SIGKILL');

    const offset = await headOffset(id);
    assert.ok(offset > 0 && offset < SIZE, `partial upload before the second run (offset ${offset})`);

    proxy.setRate(null);
    const second = await runCli(args, env).done;
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, new RegExp(`resuming .*${id} at byte \\d+`));
    const result = JSON.parse(second.stdout) as JsonResult;
    assert.equal(result.uploadId, id, 'the second run continued the same upload');
    assert.equal(result.imageId, image.id);
    assert.equal(result.state, 'active');
    assert.equal(result.checksum, md5);
    assert.equal(result.size, SIZE);
    assert.deepEqual(await uploadIdsForImage(gw.storageDir, image.id), [id], 'only one upload was created for the image');

    const puts = glance.puts.filter((p) => p.imageId === image.id && p.status === 204);
    assert.equal(puts.length, 1);
    assert.equal(puts[0]!.sha256, file.sha256);
    assert.deepEqual(await storedUploadUrls(env.GLANCE_UPLOAD_STATE!), [], 'finished uploads are forgotten');
  } finally {
    await proxy.stop();
  }
});

test('killed during the push, the same command run again follows it without uploading again', async () => {
  const file = await makeFile(dir, 'push.raw', 8 * MiB);
  const image = glance.createImage('project-a');
  glance.failNextPuts({ kind: 'slow', bytesPerSecond: 2 * MiB });
  const env = await cliEnv();
  const args = [file.path, '--image-id', image.id, '--gateway', gw.url, '--json'];

  const first = runCli(args, env);
  await until('the push to start', async () => (/push: pushing/.test(first.stderr()) ? true : undefined));
  first.child.kill('SIGKILL');
  await first.done;

  const second = await runCli(args, env).done;
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /already complete; following its push/);
  const result = JSON.parse(second.stdout) as JsonResult;
  assert.equal(result.state, 'active');
  assert.deepEqual(await uploadIdsForImage(gw.storageDir, image.id), [result.uploadId]);
  assert.equal(glance.puts.filter((p) => p.imageId === image.id).length, 1, 'one push, followed by both runs');
});

test('--name without --disk-format: a qcow2 file makes a qcow2 image', async () => {
  const qcow2 = path.join(dir, 'disk.qcow2');
  qemuImg('create', '-f', 'qcow2', qcow2, '64M');
  const run = await runCli([qcow2, '--name', 'cli-qcow2', '--tags', 'a,b', '--gateway', gw.url, '--json'], await cliEnv()).done;
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /disk_format qcow2/);
  const result = JSON.parse(run.stdout) as JsonResult;
  const image = glance.image(result.imageId);
  assert.equal(image?.disk_format, 'qcow2');
  assert.equal(image?.container_format, 'bare');
  assert.equal(image?.name, 'cli-qcow2');
  assert.deepEqual(image?.tags, ['a', 'b']);
  assert.equal(image?.status, 'active');
  assert.equal(result.checksum, (await glanceHashes(qcow2)).md5);
});

test('a push Glance refuses (403): exit 1 and the reason on stderr', async () => {
  const file = await makeFile(dir, 'refused.raw', 2 * MiB);
  const image = glance.createImage('project-a');
  glance.failNextPuts({ kind: 'status', status: 403, message: 'policy forbids upload_image' });
  const env = await cliEnv();
  const args = [file.path, '--image-id', image.id, '--gateway', gw.url];
  const run = await runCli(args, env).done;
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /push failed: .*policy forbids upload_image/);
  assert.equal(run.stdout, '');

  // Once the cause is fixed, the same command starts the push again (no new upload).
  const again = await runCli(args, env).done;
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /the last push failed .*starting it again/);
  assert.equal((await uploadIdsForImage(gw.storageDir, image.id)).length, 1);
});

test('the event stream cut mid-push: the CLI reconnects and ends active', async () => {
  const file = await makeFile(dir, 'cut.raw', 6 * MiB);
  const image = glance.createImage('project-a');
  glance.failNextPuts({ kind: 'slow', bytesPerSecond: 2 * MiB });
  const proxy = await TcpProxy.start(gw.url);
  try {
    const run = runCli([file.path, '--image-id', image.id, '--gateway', proxy.url, '--json'], await cliEnv());
    await until('the push to start', async () => (/push: pushing/.test(run.stderr()) ? true : undefined));
    proxy.cutAll();
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /event stream lost .*reconnecting/);
    assert.equal((JSON.parse(result.stdout) as JsonResult).state, 'active');
  } finally {
    await proxy.stop();
  }
});

test('Glance says 401 during the push (awaiting_token): the CLI keeps following and ends active', async () => {
  const file = await makeFile(dir, 'token.raw', 2 * MiB);
  const image = glance.createImage('project-a');
  glance.failNextPuts({ kind: 'status', status: 401, bytesPerSecond: 4 * MiB });
  const run = await runCli([file.path, '--image-id', image.id, '--gateway', gw.url, '--json'], await cliEnv()).done;
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /push: awaiting_token/);
  assert.equal((JSON.parse(run.stdout) as JsonResult).state, 'active');
  assert.deepEqual(glance.puts.filter((p) => p.imageId === image.id).map((p) => p.status), [401, 204]);
});

test('no token anywhere: exit 2 with one line, nothing uploaded', async () => {
  const file = await makeFile(dir, 'notoken.raw', 1 * MiB);
  const image = glance.createImage('project-a');
  const env = await cliEnv();
  delete env.OS_TOKEN;
  const run = await runCli([file.path, '--image-id', image.id, '--gateway', gw.url], env).done;
  assert.equal(run.code, 2);
  assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  assert.match(run.stderr, /no token/);
  assert.deepEqual(await uploadIdsForImage(gw.storageDir, image.id), []);
});

test('bad usage: exit 2', async () => {
  const file = await makeFile(dir, 'usage.raw', 1 * MiB);
  const run = await runCli([file.path, '--image-id', '00000000-0000-0000-0000-000000000000', '--disk-format', 'raw'], await cliEnv()).done;
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--disk-format goes with --name/);
});

test('a token from Keystone (password), never printed', async () => {
  let body: { auth?: { identity?: { methods?: string[] }; scope?: unknown } } = {};
  const keystone: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v3/auth/tokens') return void res.writeHead(404).end();
      body = JSON.parse(text) as typeof body;
      res.writeHead(201, { 'x-subject-token': 'token-a', 'content-type': 'application/json' }).end('{"token":{}}');
    });
  });
  await new Promise<void>((r) => keystone.listen(0, '127.0.0.1', r));
  try {
    const authUrl = `http://127.0.0.1:${(keystone.address() as AddressInfo).port}/v3`;
    const file = await makeFile(dir, 'keystone.raw', 1 * MiB);
    const image = glance.createImage('project-a');
    const env = await cliEnv({ OS_AUTH_URL: authUrl, OS_USERNAME: 'demo', OS_PASSWORD: 'secret', OS_PROJECT_NAME: 'demo' });
    delete env.OS_TOKEN;
    const run = await runCli([file.path, '--image-id', image.id, '--gateway', gw.url], env).done;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(body.auth?.identity?.methods, ['password']);
    assert.deepEqual(body.auth?.scope, { project: { name: 'demo', domain: { name: 'Default' } } });
    assert.match(run.stdout, new RegExp(`image_id ${image.id}\nchecksum [0-9a-f]{32}\n`));
    assert.ok(!run.stdout.includes('token-a') && !run.stderr.includes('token-a'), 'the token is never printed');
    for (const f of await fsp.readdir(path.dirname(env.GLANCE_UPLOAD_STATE!))) {
      const content = await fsp.readFile(path.join(path.dirname(env.GLANCE_UPLOAD_STATE!), f), 'utf8').catch(() => '');
      assert.ok(!content.includes('token-a'), `${f} holds no token`);
    }
  } finally {
    await new Promise<void>((r) => keystone.close(() => r()));
  }
});
