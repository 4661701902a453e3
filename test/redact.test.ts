// Upstream error text loses anything token-like before it is logged, stored or served.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { redact } from '../src/glance/redact.js';

const fernet = () => `gAAAAA${randomBytes(140).toString('base64url')}`;
const jwt = () =>
  [{ alg: 'RS256', typ: 'JWT' }, { sub: 'admin', exp: 1 }].map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')).join('.') +
  `.${randomBytes(64).toString('base64url')}`;

test('Fernet tokens, JWTs, long hex and base64 runs are replaced; the words around them stay', () => {
  const secrets = [fernet(), jwt(), randomBytes(16).toString('hex'), randomBytes(32).toString('hex'), randomBytes(30).toString('base64')];
  for (const secret of secrets) {
    const out = redact(`Token ${secret} could not be validated.`);
    assert.equal(out, 'Token [redacted] could not be validated.', secret);
  }
  // Mixed letters and digits, shorter than a Fernet token, inside a path.
  assert.equal(redact('GET /auth/tokens?nocatalog=1&t=a1b2c3d4e5f6g7h8i9j0 failed'), 'GET /auth/tokens?nocatalog=1&t=[redacted] failed');
});

test('anything after a credential header name is dropped, whatever it looks like', () => {
  assert.equal(redact('Invalid X-Auth-Token: token-a (expired)'), 'Invalid X-Auth-Token [redacted]');
  assert.equal(redact('bad header x_subject_token=abc, retry'), 'bad header x_subject_token [redacted]');
  assert.equal(redact('HTTP_X_AUTH_TOKEN short'), 'HTTP_X_AUTH_TOKEN [redacted]');
  assert.equal(redact('Authorization: Basic dXNlcjpwdw=='), 'Authorization: [redacted]');
  assert.equal(redact('sent Bearer abc.def'), 'sent Bearer [redacted]');
});

test('dashed UUIDs, Glance paths and ordinary messages stay readable', () => {
  const id = randomUUID();
  for (const text of [
    `No image found with ID ${id}`,
    `Image status transition from saving to saving is not allowed (/v2/images/${id}/file)`,
    'Properties disk_format, container_format must be set prior to saving data.',
    'The request you have made requires authentication.',
    'Content type application/octet-stream not supported; x-openstack-image-size 1048576',
    `project ${randomUUID()} owns image ${id.toUpperCase()}`,
    'UND_ERR_CONNECT_TIMEOUT: Connect Timeout Error (attempted address: 127.0.0.1:9292, timeout: 10000ms)',
    'ECONNRESET: other side closed',
  ]) {
    assert.equal(redact(text), text);
  }
});

test('the result is at most 300 characters, and a token cut by the bound is still redacted', () => {
  const long = `${'word '.repeat(58)}${fernet()}`;
  const out = redact(long);
  assert.ok(out.length <= 300);
  assert.doesNotMatch(out, /gAAAA/);
  assert.equal(redact('x'.repeat(500), 10).length, 10);
});
