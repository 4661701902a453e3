// deploy/nginx.conf in front of the gateway: tus-js-client uploads through a real nginx
// (Debian's `nginx` package), and the event stream arrives through it as it is sent.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeFile, MiB } from './support/files.js';
import { getStatus, tempDir, waitForState } from './support/gateway.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

const EXAMPLE = fileURLToPath(new URL('../deploy/nginx.conf', import.meta.url));
const TOKEN = 'token-a';

/** Where Debian puts nginx; root's PATH has /usr/sbin, other users' may not. */
function findNginx(): string | undefined {
  for (const candidate of ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (spawnSync(candidate, ['-v'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * deploy/nginx.conf with its `listen` lines and its upstream's `server` pointed at the test's
 * ports; everything else exactly as shipped. Fails if the example no longer has those lines.
 */
function adaptExample(example: string, listenPort: number, upstream: string): string {
  let listens = 0;
  let servers = 0;
  const adapted = example
    // every active `listen` (a commented-out TLS listen stays commented)
    .replace(/^(\s*)listen\s+[^;]*;/gm, (_m, indent: string) => {
      listens++;
      return listens === 1 ? `${indent}listen 127.0.0.1:${listenPort};` : `${indent}# (test: one listen only)`;
    })
    // the `server host:port` lines inside the upstream block
    .replace(/(upstream\s+\S+\s*\{)([^}]*)\}/g, (_m, head: string, body: string) => {
      const replaced = body.replace(/^(\s*)server\s+[^;]+;/gm, (_s, indent: string) => {
        servers++;
        return servers === 1 ? `${indent}server ${upstream};` : `${indent}# (test: one upstream server only)`;
      });
      return `${head}${replaced}}`;
    });
  assert.ok(listens >= 1, 'deploy/nginx.conf has a listen line');
  assert.ok(servers >= 1, 'deploy/nginx.conf has an upstream with a server line');
  return adapted;
}

interface Nginx {
  url: string;
  dir: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** nginx in the foreground with everything (pid, logs, temp files) in a temp dir. */
async function startNginx(bin: string, upstream: string): Promise<Nginx> {
  const dir = await tempDir('gw-nginx-');
  await fsp.chmod(dir, 0o755); // workers run as nobody when the master is root
  const port = await freePort();
  const site = path.join(dir, 'gateway.conf');
  await fsp.writeFile(site, adaptExample(await fsp.readFile(EXAMPLE, 'utf8'), port, upstream));
  const conf = path.join(dir, 'nginx.conf');
  const temp = (name: string) => `${name}_temp_path ${path.join(dir, name)};`;
  await fsp.writeFile(
    conf,
    [
      'worker_processes 1;',
      `error_log ${path.join(dir, 'error.log')} info;`,
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${path.join(dir, 'access.log')};`,
      `  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}`,
      `  include ${site};`,
      '}',
      '',
    ].join('\n'),
  );
  const pidFile = path.join(dir, 'nginx.pid');
  const args = ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf, '-g', `daemon off; pid ${pidFile};`];
  const test = spawnSync(bin, ['-t', ...args], { encoding: 'utf8' });
  assert.equal(test.status, 0, `nginx -t: ${test.stderr}`);

  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${stderr}`);
    const res = await fetch(`${url}/healthz`).catch(() => null);
    if (res?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`nginx did not answer on ${url}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  let stopped = false;
  return {
    url,
    dir,
    child,
    async stop() {
      if (stopped) return;
      stopped = true;
      const workers = childrenOf(child.pid!);
      if (child.exitCode === null) child.kill('SIGQUIT'); // graceful: workers finish their requests
      const timer = setTimeout(() => child.kill('SIGTERM'), 5_000);
      await exited;
      clearTimeout(timer);
      // The workers leave with the master; wait briefly for them to be reaped.
      const until = Date.now() + 5_000;
      while (workers.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const left = workers.filter(alive);
      for (const pid of left) process.kill(pid, 'SIGKILL');
      assert.deepEqual(left, [], 'no nginx worker is left behind');
      assert.equal(fs.existsSync(pidFile), false, 'nginx removed its pid file on a clean exit');
    },
  };
}

/** Direct children of a process (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const bin = findNginx();
const stack = fakeStack();
let nginx: Nginx;
let dir: string;
let file32: { path: string; sha256: string };

before(async () => {
  assert.ok(bin, 'nginx is installed (Debian: apt-get install -y nginx)');
  await stack.ready;
  nginx = await startNginx(bin, new URL(stack.gw.url).host);
  dir = await tempDir('gw-data-');
  file32 = await makeFile(dir, 'disk32.raw', 32 * MiB);
});

after(async () => {
  try {
    await nginx?.stop();
  } finally {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
    if (nginx) await fsp.rm(nginx.dir, { recursive: true, force: true });
  }
});

test('deploy/nginx.conf has the settings a streaming tus proxy needs', async () => {
  const conf = (await fsp.readFile(EXAMPLE, 'utf8')).replace(/#.*$/gm, '');
  for (const directive of [
    /proxy_request_buffering\s+off;/,
    /proxy_buffering\s+off;/,
    /client_max_body_size\s+0;/,
    /proxy_http_version\s+1\.1;/,
    /proxy_read_timeout\s+\d+[smhd]?;/,
    /proxy_send_timeout\s+\d+[smhd]?;/,
    /proxy_set_header\s+Host\s+\$host;/,
    /proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;/,
    /proxy_set_header\s+X-Forwarded-Proto\s+\$scheme;/,
    /location\s+~\s+\S*events\S*\s*\{[^}]*proxy_buffering\s+off;/,
  ]) {
    assert.match(conf, directive);
  }
});

test('POST through nginx answers a relative Location that the proxy passes on unchanged', async () => {
  const image = stack.glance.createImage('project-a');
  const res = await fetch(`${nginx.url}/files/`, {
    method: 'POST',
    headers: {
      'tus-resumable': '1.0.0',
      'x-auth-token': TOKEN,
      'upload-length': '4',
      'upload-metadata': `image_id ${Buffer.from(image.id).toString('base64')}`,
    },
  });
  assert.equal(res.status, 201, await res.text());
  assert.match(res.headers.get('location') ?? '', /^\/files\/[0-9a-f]{32}$/);
  // Clean up: this upload is never sent.
  const del = await fetch(`${nginx.url}${res.headers.get('location')}`, {
    method: 'DELETE',
    headers: { 'tus-resumable': '1.0.0', 'x-auth-token': TOKEN },
  });
  assert.equal(del.status, 204);
});

for (const [label, chunkSize] of [
  ['in one PATCH', Infinity],
  ['in 8 MiB chunks', 8 * MiB],
] as const) {
  test(`tus-js-client uploads 32 MiB through nginx ${label}; the image ends active with the same bytes`, async () => {
    const image = stack.glance.createImage('project-a');
    const result = await tusUpload(nginx.url, file32.path, {
      token: TOKEN,
      metadata: { image_id: image.id, filename: 'disk32.raw' },
      chunkSize,
    });
    assert.ok(result.uploadUrl.startsWith(`${nginx.url}/files/`), `the upload URL points at the proxy: ${result.uploadUrl}`);

    const { status } = await waitForState(nginx.url, result.uploadUrl, TOKEN, ['active', 'failed']);
    assert.equal(status.state, 'active', JSON.stringify(status.error));
    assert.equal(status.offset, 32 * MiB);
    const put = stack.glance.puts.filter((p) => p.imageId === image.id).at(-1)!;
    assert.equal(stack.glance.puts.at(-1), put);
    assert.equal(put.sha256, file32.sha256, 'Glance received exactly the bytes of the file');
    assert.equal(stack.glance.image(image.id)!.status, 'active');
  });
}

test('the event stream arrives through nginx as it is sent, before the push ends', async () => {
  const file = await makeFile(dir, 'disk8.raw', 8 * MiB);
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'slow', bytesPerSecond: 2 * MiB }); // a push of about 4 s
  const result = await tusUpload(nginx.url, file.path, {
    token: TOKEN,
    metadata: { image_id: image.id, filename: 'disk8.raw' },
  });
  assert.notEqual((await getStatus(nginx.url, result.uploadUrl, TOKEN)).state, 'active');

  const abort = new AbortController();
  const res = await fetch(`${result.uploadUrl}/events`, { headers: { 'x-auth-token': TOKEN }, signal: abort.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);

  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; state: string; imageActiveInGlance: boolean }[] = [];
  let buffer = '';
  const deadline = setTimeout(() => abort.abort(), 30_000);
  try {
    while (!events.some((e) => e.state === 'active')) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!event || !data) continue; // heartbeat
        events.push({
          event,
          state: (JSON.parse(data) as { state: string }).state,
          imageActiveInGlance: stack.glance.image(image.id)!.status === 'active',
        });
      }
    }
  } finally {
    clearTimeout(deadline);
    abort.abort();
  }

  assert.ok(events.length >= 2, `several events: ${JSON.stringify(events)}`);
  assert.equal(events[0]!.event, 'status');
  assert.equal(events[0]!.imageActiveInGlance, false, 'the first event came through while the push was still running');
  assert.notEqual(events[0]!.state, 'active');
  assert.equal(events.at(-1)!.state, 'active');
  assert.ok(events.some((e) => e.event === 'progress' || e.state !== events[0]!.state), 'later events followed');
  assert.equal(stack.glance.puts.filter((p) => p.imageId === image.id).at(-1)!.sha256, file.sha256);
});

test('nginx stops and leaves no process behind', async () => {
  const pid = nginx.child.pid!;
  const workers = childrenOf(pid);
  assert.ok(workers.length >= 1, 'nginx runs a worker');
  await nginx.stop();
  assert.equal(alive(pid), false);
  for (const worker of workers) assert.equal(alive(worker), false);
  await assert.rejects(fetch(`${nginx.url}/healthz`));

  // With request buffering on, nginx would have spooled every PATCH body to disk first.
  const log = await fsp.readFile(path.join(nginx.dir, 'error.log'), 'utf8');
  assert.doesNotMatch(log, /buffered to a temporary file/, 'request bodies streamed through, never spooled');
  assert.doesNotMatch(log, /\[(emerg|alert|crit)\]/);
});
