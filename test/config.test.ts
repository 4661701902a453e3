// Configuration: the contract's defaults, and one clear line naming a bad variable.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { inspect } from 'node:util';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';
import { ROOT } from './support/gateway-process.js';

test('defaults are the contract table', () => {
  const config = loadConfig({});
  assert.equal(config.port, 1080);
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.storageDir, path.resolve('./storage'));
  assert.equal(config.glanceUrl, 'http://127.0.0.1:9292');
  assert.deepEqual(config.keystone, { authUrl: 'http://127.0.0.1:5000/v3', interface: 'public', region: undefined });
  assert.deepEqual(config.limits, { uploadsPerProject: 100, bytesPerProject: 549755813888, idleMs: 3600000 });
  assert.equal(config.maxUploadSize, 137438953472);
  assert.equal(config.push.concurrency, 2);
  assert.equal(config.push.streaming.minRate, 1048576);
  assert.equal(config.allowedOrigins, undefined);
  assert.equal(config.logLevel, 'info');
});

test('OS_AUTH_URL without GLANCE_URL takes the image endpoint from the token catalog', () => {
  const config = loadConfig({ OS_AUTH_URL: 'http://127.0.0.1:5000/v3/', OS_REGION_NAME: 'RegionOne' });
  assert.equal(config.glanceUrl, undefined);
  assert.deepEqual(config.keystone, { authUrl: 'http://127.0.0.1:5000/v3', interface: 'public', region: 'RegionOne' });
  assert.equal(loadConfig({ OS_AUTH_URL: 'http://k/v3', GLANCE_URL: 'http://g:9292/' }).glanceUrl, 'http://g:9292');
});

test('lists and numbers are parsed', () => {
  const config = loadConfig({ ALLOWED_ORIGINS: 'https://a.example, https://b.example', PUSH_CONCURRENCY: '4', MAX_UPLOAD_SIZE: '1000' });
  assert.deepEqual(config.allowedOrigins, ['https://a.example', 'https://b.example']);
  assert.equal(config.push.concurrency, 4);
  assert.equal(config.maxUploadSize, 1000);
});

for (const [name, value] of [
  ['PORT', 'abc'],
  ['PORT', '70000'],
  ['GLANCE_URL', 'not a url'],
  ['GLANCE_URL', 'ftp://glance'],
  ['OS_AUTH_URL', 'keystone'],
  ['MAX_UPLOAD_SIZE', '-5'],
  ['PUSH_CONCURRENCY', '0'],
  ['PUSH_STREAM_MIN_RATE', '-1'],
  ['PUSH_STREAM_MIN_RATE', '1MiB'],
  ['LOG_LEVEL', 'loud'],
  ['OS_INTERFACE', 'private'],
  ['REDIS_URL', 'http://redis:6379'],
] as const) {
  test(`${name}=${value} is refused, naming the variable`, () => {
    assert.throws(() => loadConfig({ [name]: value }), (err: Error) => err instanceof ConfigError && err.message.startsWith(`invalid ${name}=`));
  });
}

test('the service user: a password or a password file, never shown when the configuration is logged', () => {
  assert.equal(loadConfig({}).service, undefined);
  const config = loadConfig({ SERVICE_USERNAME: 'gateway', SERVICE_PASSWORD: 'pa55-w0rd' });
  assert.equal(config.service?.name, 'gateway');
  assert.equal(config.service?.domainName, 'Default');
  assert.equal(config.service?.password.reveal(), 'pa55-w0rd');
  assert.ok(!JSON.stringify(config).includes('pa55-w0rd'), 'not in JSON');
  assert.ok(!inspect(config, { depth: 10 }).includes('pa55-w0rd'), 'not in inspect');
  assert.ok(!`${config.service?.password}`.includes('pa55-w0rd'), 'not as a string');

  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gw-config-')), 'password');
  fs.writeFileSync(file, 'from-a-file\n');
  const fromFile = loadConfig({ SERVICE_USERNAME: 'gateway', SERVICE_PASSWORD_FILE: file, SERVICE_USER_DOMAIN_NAME: 'services' });
  assert.equal(fromFile.service?.password.reveal(), 'from-a-file');
  assert.equal(fromFile.service?.domainName, 'services');
});

for (const [env, name] of [
  [{ SERVICE_USERNAME: 'gateway' }, 'SERVICE_PASSWORD'],
  [{ SERVICE_PASSWORD: 'x' }, 'SERVICE_USERNAME'],
  [{ SERVICE_USERNAME: 'gateway', SERVICE_PASSWORD: 'x', SERVICE_PASSWORD_FILE: '/etc/hostname' }, 'SERVICE_PASSWORD_FILE'],
  [{ SERVICE_USERNAME: 'gateway', SERVICE_PASSWORD_FILE: '/nonexistent/password' }, 'SERVICE_PASSWORD_FILE'],
] as const) {
  test(`the service user with ${Object.keys(env).join(', ')} is refused, naming ${name}`, () => {
    assert.throws(() => loadConfig(env), (err: Error) => err instanceof ConfigError && err.message.startsWith(`invalid ${name}`) && !err.message.includes('"x"'));
  });
}

test('a bad value stops the process with one line on stderr', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, PUSH_CONCURRENCY: 'many' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(run.status, 2);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, /PUSH_CONCURRENCY/);
});
