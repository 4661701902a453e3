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
import { startGateway, tempDir, uploadIdsForImage } from './support/gateway.js';
import { TUS } from './support/http.js';
import { qemuImg } from './support/qemu.js';
import { fakeStack } from './support/stacks.js';
import { TcpProxy } from './support/tcp-proxy.js';

const stack = fakeStack();
let dir: string;

before(async () => {
  dir = await tempDir('gw-cli-');
});
after(async () => {
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
  const res = await fetch(`${stack.gw.url}/files/${id}`, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
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
  const image = stack.glance.createImage('project-a');
  const proxy = await TcpProxy.start(stack.gw.url);
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
    assert.deepEqual(await uploadIdsForImage(stack.gw.storageDir, image.id), [id], 'only one upload was created for the image');

    const puts = stack.glance.puts.filter((p) => p.imageId === image.id && p.status === 204);
    assert.equal(puts.length, 1);
    assert.equal(puts[0]!.sha256, file.sha256);
    assert.deepEqual(await storedUploadUrls(env.GLANCE_UPLOAD_STATE!), [], 'finished uploads are forgotten');
  } finally {
    await proxy.stop();
  }
});

test('killed during the push, the same command run again follows it without uploading again', async () => {
  const file = await makeFile(dir, 'push.raw', 8 * MiB);
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'slow', bytesPerSecond: 2 * MiB });
  const env = await cliEnv();
  const args = [file.path, '--image-id', image.id, '--gateway', stack.gw.url, '--json'];

  const first = runCli(args, env);
  await until('the push to start', async () => (/push: pushing/.test(first.stderr()) ? true : undefined));
  first.child.kill('SIGKILL');
  await first.done;

  const second = await runCli(args, env).done;
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /already complete; following its push/);
  const result = JSON.parse(second.stdout) as JsonResult;
  assert.equal(result.state, 'active');
  assert.deepEqual(await uploadIdsForImage(stack.gw.storageDir, image.id), [result.uploadId]);
  assert.equal(stack.glance.puts.filter((p) => p.imageId === image.id).length, 1, 'one push, followed by both runs');
});

test('--name without --disk-format: a qcow2 file makes a qcow2 image', async () => {
  const qcow2 = path.join(dir, 'disk.qcow2');
  qemuImg('create', '-f', 'qcow2', qcow2, '64M');
  const run = await runCli([qcow2, '--name', 'cli-qcow2', '--tags', 'a,b', '--gateway', stack.gw.url, '--json'], await cliEnv()).done;
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /disk_format qcow2/);
  const result = JSON.parse(run.stdout) as JsonResult;
  const image = stack.glance.image(result.imageId);
  assert.equal(image?.disk_format, 'qcow2');
  assert.equal(image?.container_format, 'bare');
  assert.equal(image?.name, 'cli-qcow2');
  assert.deepEqual(image?.tags, ['a', 'b']);
  assert.equal(image?.status, 'active');
  assert.equal(result.checksum, (await glanceHashes(qcow2)).md5);
});

test('a push Glance refuses (403): exit 1 and the reason on stderr', async () => {
  const file = await makeFile(dir, 'refused.raw', 2 * MiB);
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 403, message: 'policy forbids upload_image' });
  const env = await cliEnv();
  const args = [file.path, '--image-id', image.id, '--gateway', stack.gw.url];
  const run = await runCli(args, env).done;
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /push failed: .*policy forbids upload_image/);
  assert.equal(run.stdout, '');

  // Once the cause is fixed, the same command starts the push again (no new upload).
  const again = await runCli(args, env).done;
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /the last push failed .*starting it again/);
  assert.equal((await uploadIdsForImage(stack.gw.storageDir, image.id)).length, 1);
});

test('the event stream cut mid-push: the CLI reconnects and ends active', async () => {
  const file = await makeFile(dir, 'cut.raw', 6 * MiB);
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'slow', bytesPerSecond: 2 * MiB });
  const proxy = await TcpProxy.start(stack.gw.url);
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
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 401, bytesPerSecond: 4 * MiB });
  const run = await runCli([file.path, '--image-id', image.id, '--gateway', stack.gw.url, '--json'], await cliEnv()).done;
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /push: awaiting_token/);
  assert.equal((JSON.parse(run.stdout) as JsonResult).state, 'active');
  assert.deepEqual(stack.glance.puts.filter((p) => p.imageId === image.id).map((p) => p.status), [401, 204]);
});

test('no token anywhere: exit 2 with one line, nothing uploaded', async () => {
  const file = await makeFile(dir, 'notoken.raw', 1 * MiB);
  const image = stack.glance.createImage('project-a');
  const env = await cliEnv();
  delete env.OS_TOKEN;
  const run = await runCli([file.path, '--image-id', image.id, '--gateway', stack.gw.url], env).done;
  assert.equal(run.code, 2);
  assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  assert.match(run.stderr, /no token/);
  assert.deepEqual(await uploadIdsForImage(stack.gw.storageDir, image.id), []);
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
    const image = stack.glance.createImage('project-a');
    const env = await cliEnv({ OS_AUTH_URL: authUrl, OS_USERNAME: 'demo', OS_PASSWORD: 'secret', OS_PROJECT_NAME: 'demo' });
    delete env.OS_TOKEN;
    const run = await runCli([file.path, '--image-id', image.id, '--gateway', stack.gw.url], env).done;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(body.auth?.identity?.methods, ['password']);
    assert.deepEqual(body.auth?.scope, { project: { name: 'demo', domain: { name: 'Default' } } });
    assert.match(run.stdout, new RegExp(`image_id ${image.id}\nchecksum [0-9a-f]{32}\nverified sha512 [0-9a-f]{128}\n`));
    assert.ok(!run.stdout.includes('token-a') && !run.stderr.includes('token-a'), 'the token is never printed');
    for (const f of await fsp.readdir(path.dirname(env.GLANCE_UPLOAD_STATE!))) {
      const content = await fsp.readFile(path.join(path.dirname(env.GLANCE_UPLOAD_STATE!), f), 'utf8').catch(() => '');
      assert.ok(!content.includes('token-a'), `${f} holds no token`);
    }
  } finally {
    await new Promise<void>((r) => keystone.close(() => r()));
  }
});

/**
 * Start the CLI through a slowed link and SIGKILL it once `bytes` reached the gateway:
 * a partial upload the state file remembers. Returns the upload's id. Later runs use the same
 * proxy URL, unslowed: the gateway URL is part of what the CLI resumes.
 */
async function killedPartWay(args: string[], env: Record<string, string>, proxy: TcpProxy, bytes = 4 * MiB): Promise<string> {
  proxy.setRate(4 * MiB);
  const run = runCli([...args, '--gateway', proxy.url, '--chunk-size', '1MiB'], env);
  try {
    const uploadUrl = await until('the upload URL in the state file', async () => (await storedUploadUrls(env.GLANCE_UPLOAD_STATE!))[0]);
    const id = uploadUrl.split('/').pop()!;
    await until(`${bytes} bytes on the gateway`, async () => ((await headOffset(id)) >= bytes ? true : undefined));
    return id;
  } finally {
    run.child.kill('SIGKILL');
    await run.done;
    proxy.setRate(null);
  }
}

/** A whole-second mtime, which utimes can give back exactly (a Date holds only milliseconds). */
async function wholeSecondMtime(file: string): Promise<void> {
  const when = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
  await fsp.utimes(file, when, when);
}

/** Put `replacement`'s bytes into `file` in place, then give `file` back its size and mtime. */
async function replaceKeepingMtime(file: string, replacement: string): Promise<void> {
  const before = await fsp.stat(file, { bigint: true });
  await fsp.copyFile(replacement, file);
  await fsp.utimes(file, new Date(Number(before.atimeMs)), new Date(Number(before.mtimeMs)));
  const after = await fsp.stat(file, { bigint: true });
  assert.equal(after.size, before.size);
  assert.equal(after.mtimeNs, before.mtimeNs, 'the same mtime to the nanosecond');
  assert.equal(after.ino, before.ino, 'the same inode');
}

test('the same file sent to two images: each gets its own upload, both end active with the file\'s hashes', async () => {
  const file = await makeFile(dir, 'two-images.raw', 16 * MiB);
  const hashes = await glanceHashes(file.path);
  const first = stack.glance.createImage('project-a');
  const second = stack.glance.createImage('project-a');
  const env = await cliEnv();
  const proxy = await TcpProxy.start(stack.gw.url);
  try {
    const firstId = await killedPartWay([file.path, '--image-id', first.id], env, proxy);

    const other = await runCli([file.path, '--image-id', second.id, '--gateway', proxy.url, '--json'], env).done;
    assert.equal(other.code, 0, other.stderr);
    assert.doesNotMatch(other.stderr, /resuming .* at byte/);
    const otherResult = JSON.parse(other.stdout) as JsonResult;
    assert.equal(otherResult.imageId, second.id);
    assert.notEqual(otherResult.uploadId, firstId, 'the second image did not take over the first image\'s upload');

    const verified = (JSON.parse(other.stdout) as { verified: unknown }).verified;
    assert.deepEqual(verified, { algo: 'sha512', value: hashes.sha512 }, 'the image was checked against the file');

    const again = await runCli([file.path, '--image-id', first.id, '--gateway', proxy.url, '--json'], env).done;
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`resuming .*${firstId} at byte \\d+`), 'the first image\'s own upload still resumes');
    assert.equal((JSON.parse(again.stdout) as JsonResult).imageId, first.id);

    for (const image of [first, second]) {
      const stored = stack.glance.image(image.id);
      assert.equal(stored?.status, 'active');
      assert.equal(stored?.checksum, hashes.md5);
      assert.equal(stored?.os_hash_value, hashes.sha512);
    }
  } finally {
    await proxy.stop();
  }
});

test('a file replaced by another of the same size and mtime is not resumed: the new image holds exactly the new file', async () => {
  const file = await makeFile(dir, 'replaced.raw', 16 * MiB);
  const replacement = await makeFile(dir, 'replacement.raw', 16 * MiB);
  await wholeSecondMtime(file.path);
  const env = await cliEnv();
  const args = [file.path, '--name', 'cli-replaced', '--disk-format', 'raw'];
  const proxy = await TcpProxy.start(stack.gw.url);
  try {
    const oldId = await killedPartWay(args, env, proxy);
    await replaceKeepingMtime(file.path, replacement.path);

    const run = await runCli([...args, '--gateway', proxy.url, '--json'], env).done;
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /resuming .* at byte/);
    const result = JSON.parse(run.stdout) as JsonResult;
    assert.notEqual(result.uploadId, oldId);
    const expected = await glanceHashes(replacement.path);
    const image = stack.glance.image(result.imageId);
    assert.equal(image?.status, 'active');
    assert.equal(image?.checksum, expected.md5);
    assert.equal(image?.os_hash_value, expected.sha512);
    assert.equal(stack.glance.puts.find((p) => p.imageId === result.imageId && p.status === 204)?.sha256, replacement.sha256);
  } finally {
    await proxy.stop();
  }
});

test('--restart after a replaced file terminates the stale upload and uploads the new file from scratch', async () => {
  const file = await makeFile(dir, 'restart.raw', 16 * MiB);
  const replacement = await makeFile(dir, 'restart-new.raw', 16 * MiB);
  await wholeSecondMtime(file.path);
  const image = stack.glance.createImage('project-a');
  const env = await cliEnv();
  const args = [file.path, '--image-id', image.id];
  const proxy = await TcpProxy.start(stack.gw.url);
  try {
    const oldId = await killedPartWay(args, env, proxy);
    await replaceKeepingMtime(file.path, replacement.path);

    // Without --restart: the gateway keeps the image for the stale upload, and the CLI says how out.
    const refused = await runCli([...args, '--gateway', proxy.url], env).done;
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /already has an upload in progress|is saving, not queued/);
    assert.match(refused.stderr, /earlier upload by this client.*with --restart/);
    assert.deepEqual(await uploadIdsForImage(stack.gw.storageDir, image.id), [oldId], 'the stale upload is left alone');

    const run = await runCli([...args, '--gateway', proxy.url, '--restart', '--json'], env).done;
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as JsonResult;
    assert.notEqual(result.uploadId, oldId);
    const head = await fetch(`${stack.gw.url}/files/${oldId}`, { method: 'HEAD', headers: { ...TUS, 'x-auth-token': 'token-a' } });
    assert.equal(head.status, 404, 'the stale upload was terminated');
    assert.deepEqual(await uploadIdsForImage(stack.gw.storageDir, image.id), [result.uploadId]);
    const expected = await glanceHashes(replacement.path);
    assert.equal(stack.glance.image(image.id)?.os_hash_value, expected.sha512);
    assert.deepEqual(await storedUploadUrls(env.GLANCE_UPLOAD_STATE!), [], 'the stale upload is forgotten');
  } finally {
    await proxy.stop();
  }
});

test('a file changed during the upload: exit 1, naming Glance\'s digest and the file\'s', async () => {
  const file = await makeFile(dir, 'changed.raw', 16 * MiB);
  const image = stack.glance.createImage('project-a');
  const proxy = await TcpProxy.start(stack.gw.url);
  try {
    proxy.setRate(4 * MiB);
    const run = runCli([file.path, '--image-id', image.id, '--gateway', proxy.url, '--chunk-size', '1MiB', '--json'], await cliEnv());
    await until('4 MiB on the gateway', async () => {
      const ids = await uploadIdsForImage(stack.gw.storageDir, image.id);
      return ids[0] && (await headOffset(ids[0])) >= 4 * MiB ? true : undefined;
    });
    // Bytes already sent change on disk: the image keeps the old ones.
    const fh = await fsp.open(file.path, 'r+');
    await fh.write(Buffer.alloc(MiB, 0x5a), 0, MiB, 0);
    await fh.close();
    proxy.setRate(null);

    const result = await run.done;
    assert.equal(result.code, 1, result.stderr);
    const local = await glanceHashes(file.path);
    const glanceHash = stack.glance.image(image.id)?.os_hash_value;
    assert.ok(glanceHash && glanceHash !== local.sha512);
    assert.match(result.stderr, /differ/);
    assert.ok(result.stderr.includes(glanceHash), 'names Glance\'s digest');
    assert.ok(result.stderr.includes(local.sha512), 'names the file\'s digest');
    const json = JSON.parse(result.stdout) as JsonResult & { verified: unknown };
    assert.equal(json.verified, null);
  } finally {
    await proxy.stop();
  }
});

test('a Glance without multihash: the image is checked against the file by its MD5 checksum', async () => {
  const oldGlance = await FakeGlance.start({ hashingAlgorithm: null });
  const oldGw = await startGateway({ GLANCE_URL: oldGlance.url });
  try {
    const file = await makeFile(dir, 'md5-only.raw', 2 * MiB);
    const image = oldGlance.createImage('project-a');
    const run = await runCli([file.path, '--image-id', image.id, '--gateway', oldGw.url, '--json'], await cliEnv()).done;
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as JsonResult & { verified: unknown };
    assert.equal(result.os_hash_value, null);
    assert.deepEqual(result.verified, { algo: 'md5', value: (await glanceHashes(file.path)).md5 });
  } finally {
    await oldGw.close();
    await oldGlance.stop();
  }
});
