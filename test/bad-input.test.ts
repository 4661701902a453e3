// Every case gets its status and body; none crashes, leaks a stack, or harms another upload.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState } from './support/gateway.js';
import { meta } from './support/http.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

// Registered before the stack, so that it runs before the stack stops.
after(async () => {
  // Nothing crashed, and the bystander upload is exactly as it was.
  assert.equal((await fetch(`${stack.gw.url}/healthz`)).status, 200);
  const head = await fetch(bystander.url, { method: 'HEAD', headers: AUTH });
  assert.equal(head.headers.get('upload-offset'), String(bystander.offset));
  const stored = await fsp.readFile(path.join(stack.gw.storageDir, 'uploads', bystander.url.split('/').pop()!));
  assert.ok(stored.equals(bystander.bytes));
});

const stack = fakeStack({ MAX_UPLOAD_SIZE: String(1 << 30) });
let bystander: { url: string; offset: number; bytes: Buffer };
let receiving: string; // an upload of 100 bytes with 10 stored
let complete: string; // a pushed upload

const AUTH = { 'tus-resumable': '1.0.0', 'x-auth-token': 'token-a' };
const PATCH = { ...AUTH, 'content-type': 'application/offset+octet-stream' };

before(async () => {
  await stack.ready;
  const mk = async (size: number, sent: Buffer) => {
    const res = await fetch(`${stack.gw.url}/files/`, {
      method: 'POST',
      headers: { ...AUTH, 'upload-length': String(size), 'upload-metadata': meta({ image_id: stack.glance.createImage('project-a').id }), 'content-type': 'application/offset+octet-stream' },
      body: sent,
    });
    assert.equal(res.status, 201);
    return new URL(res.headers.get('location')!, stack.gw.url).toString();
  };
  const bytes = Buffer.alloc(1000, 7);
  bystander = { url: await mk(5000, bytes), offset: 1000, bytes };
  receiving = await mk(100, Buffer.alloc(10, 1));
  const file = await makeFile(await tempDir(), 'done.raw', 1 * MiB);
  const done = await tusUpload(stack.gw.url, file.path, { token: 'token-a', metadata: { image_id: stack.glance.createImage('project-a').id } });
  complete = done.uploadUrl;
  await waitForState(stack.gw.url, new URL(complete).pathname, 'token-a', 'active');
});

interface Case {
  name: string;
  method: string;
  path: string | (() => string);
  headers?: Record<string, string> | (() => Record<string, string>);
  body?: Buffer;
  status: number;
  /** Expected `error.code`, or null for an empty body (HEAD, or Node's own refusal). */
  code: string | null;
}

const image = () => stack.glance.createImage('project-a').id;
const create = (headers: Record<string, string>) => ({ ...AUTH, 'upload-metadata': meta({ image_id: image() }), ...headers });
const at = (which: () => string) => () => new URL(which()).pathname;

const cases: Case[] = [
  { name: 'POST without Tus-Resumable', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '10', 'tus-resumable': '' }), status: 412, code: 'tus_resumable_required' },
  { name: 'POST with Tus-Resumable 0.2.0', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '10', 'tus-resumable': '0.2.0' }), status: 412, code: 'tus_version' },
  { name: 'PATCH without Tus-Resumable', method: 'PATCH', path: at(() => receiving), headers: { 'x-auth-token': 'token-a', 'upload-offset': '10', 'content-type': 'application/offset+octet-stream' }, body: Buffer.alloc(1), status: 412, code: 'tus_resumable_required' },
  { name: 'PATCH without Upload-Offset', method: 'PATCH', path: at(() => receiving), headers: PATCH, body: Buffer.alloc(1), status: 400, code: 'invalid_header' },
  { name: 'PATCH with a negative Upload-Offset', method: 'PATCH', path: at(() => receiving), headers: { ...PATCH, 'upload-offset': '-1' }, body: Buffer.alloc(1), status: 400, code: 'invalid_header' },
  { name: 'PATCH with a non-numeric Upload-Offset', method: 'PATCH', path: at(() => receiving), headers: { ...PATCH, 'upload-offset': '1e1' }, body: Buffer.alloc(1), status: 400, code: 'invalid_header' },
  { name: 'PATCH with an Upload-Offset beyond the size', method: 'PATCH', path: at(() => receiving), headers: { ...PATCH, 'upload-offset': '5000' }, body: Buffer.alloc(1), status: 409, code: 'offset_mismatch' },
  { name: 'PATCH with an Upload-Offset that does not match', method: 'PATCH', path: at(() => receiving), headers: { ...PATCH, 'upload-offset': '5' }, body: Buffer.alloc(1), status: 409, code: 'offset_mismatch' },
  { name: 'PATCH with the wrong Content-Type', method: 'PATCH', path: at(() => receiving), headers: { ...AUTH, 'upload-offset': '10', 'content-type': 'application/octet-stream' }, body: Buffer.alloc(1), status: 415, code: 'content_type' },
  { name: 'PATCH without Content-Type', method: 'PATCH', path: at(() => receiving), headers: { ...AUTH, 'upload-offset': '10' }, status: 415, code: 'content_type' },
  { name: 'PATCH with a body longer than the declared length', method: 'PATCH', path: at(() => receiving), headers: { ...PATCH, 'upload-offset': '10' }, body: Buffer.alloc(200), status: 413, code: 'size_exceeded' },
  { name: 'PATCH on a complete upload', method: 'PATCH', path: at(() => complete), headers: { ...PATCH, 'upload-offset': String(1 * MiB) }, body: Buffer.alloc(5), status: 413, code: 'size_exceeded' },
  { name: 'Upload-Length beyond MAX_UPLOAD_SIZE', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': String(2 ** 40) }), status: 413, code: 'too_large' },
  { name: 'Upload-Length of 2^64', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '18446744073709551616' }), status: 400, code: 'invalid_length' },
  { name: 'Upload-Length negative', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '-10' }), status: 400, code: 'invalid_length' },
  { name: 'Upload-Length not a number', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': 'ten' }), status: 400, code: 'invalid_length' },
  { name: 'Upload-Length in hex', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '0x10' }), status: 400, code: 'invalid_length' },
  { name: 'Upload-Length repeated', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '10, 10' }), status: 400, code: 'invalid_length' },
  { name: 'Upload-Defer-Length (not offered)', method: 'POST', path: '/files/', headers: () => create({ 'upload-defer-length': '1' }), status: 501, code: 'unsupported_extension' },
  { name: 'Upload-Concat (not offered)', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '10', 'upload-concat': 'partial' }), status: 501, code: 'unsupported_extension' },
  { name: 'Upload-Metadata with broken base64', method: 'POST', path: '/files/', headers: { ...AUTH, 'upload-length': '10', 'upload-metadata': 'image_id %%%' }, status: 400, code: 'invalid_metadata' },
  { name: 'Upload-Metadata with a repeated key', method: 'POST', path: '/files/', headers: () => ({ ...AUTH, 'upload-length': '10', 'upload-metadata': `${meta({ image_id: image() })},${meta({ image_id: image() })}` }), status: 400, code: 'invalid_metadata' },
  { name: 'Upload-Metadata of 64 KiB', method: 'POST', path: '/files/', headers: { ...AUTH, 'upload-length': '10', 'upload-metadata': meta({ name: 'x'.repeat(48 * 1024), disk_format: 'raw' }) }, status: 431, code: null },
  { name: 'Upload-Metadata that is not UTF-8', method: 'POST', path: '/files/', headers: { ...AUTH, 'upload-length': '10', 'upload-metadata': `name ${Buffer.from([0xff, 0xfe, 0x41]).toString('base64')},disk_format ${Buffer.from('raw').toString('base64')}` }, status: 400, code: 'invalid_metadata' },
  { name: 'a disk_format Glance does not know', method: 'POST', path: '/files/', headers: { ...AUTH, 'upload-length': '10', 'upload-metadata': meta({ name: 'x', disk_format: 'floppy' }) }, status: 400, code: 'glance_refused' },
  { name: 'a malformed disk_format', method: 'POST', path: '/files/', headers: { ...AUTH, 'upload-length': '10', 'upload-metadata': meta({ name: 'x', disk_format: 'qcow2; rm -rf /' }) }, status: 400, code: 'invalid_metadata' },
  { name: 'an image_id that is not a UUID', method: 'POST', path: '/files/', headers: { ...AUTH, 'upload-length': '10', 'upload-metadata': meta({ image_id: '12345' }) }, status: 400, code: 'invalid_metadata' },
  { name: 'an empty X-Auth-Token', method: 'POST', path: '/files/', headers: () => create({ 'upload-length': '10', 'x-auth-token': '' }), status: 401, code: 'token_missing' },
  { name: 'headers of 64 KiB', method: 'HEAD', path: at(() => bystander.url), headers: { ...AUTH, 'x-padding': 'p'.repeat(64 * 1024) }, status: 431, code: null },
  { name: 'an upload id with ..', method: 'PATCH', path: '/files/..', headers: { ...PATCH, 'upload-offset': '0' }, body: Buffer.alloc(1), status: 404, code: 'not_found' },
  { name: 'an upload id with %2F', method: 'HEAD', path: '/files/..%2F..%2Fetc%2Fpasswd', headers: AUTH, status: 404, code: null },
  { name: 'an upload id with %2F (DELETE)', method: 'DELETE', path: '/files/..%2Fstate', headers: AUTH, status: 404, code: 'not_found' },
  { name: 'an upload id with NUL', method: 'DELETE', path: '/files/abc%00def', headers: AUTH, status: 404, code: 'not_found' },
  { name: 'an upload id of 1000 characters', method: 'DELETE', path: `/files/${'a'.repeat(1000)}`, headers: AUTH, status: 404, code: 'not_found' },
  { name: 'an unknown upload id', method: 'DELETE', path: `/files/${'0'.repeat(32)}`, headers: AUTH, status: 404, code: 'not_found' },
  { name: 'status of an id that is not ours', method: 'GET', path: '/files/..%2F..%2Fetc/status', headers: AUTH, status: 404, code: 'not_found' },
  { name: 'GET of an upload (no downloads)', method: 'GET', path: at(() => bystander.url), headers: AUTH, status: 405, code: 'method_not_allowed' },
  { name: 'PUT on an upload', method: 'PUT', path: at(() => bystander.url), headers: AUTH, body: Buffer.alloc(1), status: 404, code: 'not_found' },
  { name: 'push of an upload still receiving', method: 'POST', path: () => `${new URL(receiving).pathname}/push`, headers: AUTH, status: 409, code: 'push_not_restartable' },
  { name: 'push of an active upload', method: 'POST', path: () => `${new URL(complete).pathname}/push`, headers: AUTH, status: 409, code: 'push_not_restartable' },
];

for (const c of cases) {
  test(`${c.name} -> ${c.status}`, async () => {
    const headers = typeof c.headers === 'function' ? c.headers() : (c.headers ?? {});
    const res = await rawRequest(stack.gw.url, c.method, typeof c.path === 'function' ? c.path() : c.path, headers, c.body);
    assert.equal(res.status, c.status, res.body);
    assert.doesNotMatch(res.body, /\n\s+at |node_modules|\.ts:\d+/, 'no stack trace');
    if (c.code === null || c.method === 'HEAD') return;
    const body = JSON.parse(res.body) as { error: { code: string; message: string } };
    assert.equal(body.error.code, c.code);
    assert.ok(body.error.message.length > 0);
  });
}

test('a slow-loris PATCH is dropped when idle, and holds no push slot meanwhile', { timeout: 60_000 }, async () => {
  const slow = await startGateway({ GLANCE_URL: stack.glance.url, PUSH_CONCURRENCY: '1', SOCKET_IDLE_TIMEOUT_MS: '1500' });
  try {
    const created = await fetch(`${slow.url}/files/`, { method: 'POST', headers: create({ 'upload-length': '1000' }) });
    const target = new URL(created.headers.get('location')!, slow.url);
    const socket = net.connect(Number(target.port), '127.0.0.1');
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    socket.write(
      `PATCH ${target.pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nX-Auth-Token: token-a\r\n` +
        'Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 1000\r\n\r\nQ',
    );
    const started = Date.now();
    // Meanwhile another upload goes all the way through the single push slot.
    const file = await makeFile(await tempDir(), 'other.raw', 1 * MiB);
    const other = await tusUpload(slow.url, file.path, { token: 'token-a', metadata: { image_id: image() } });
    const { status } = await waitForState(slow.url, new URL(other.uploadUrl).pathname, 'token-a', ['active', 'failed']);
    assert.equal(status.state, 'active');
    const at = await closed;
    assert.ok(at - started < 15_000, 'the idle connection was closed by the gateway');
    const head = await fetch(target, { method: 'HEAD', headers: AUTH });
    assert.equal(head.headers.get('upload-offset'), '1', 'the one byte it sent is kept');
  } finally {
    await slow.close();
  }
});

/** A request over a raw socket: fetch would refuse some of these, or fold the headers. */
function rawRequest(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; body: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [k, v] of Object.entries(headers)) if (v !== '') lines.push(`${k}: ${v}`);
    if (body) lines.push(`Content-Length: ${body.length}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (body) socket.write(body);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}
