// GET /openapi.json, and real answers of a running gateway checked against its schemas.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { PUSH_ERROR_CODES, REQUEST_ERROR_CODES } from '../src/error-codes.js';
import { UPLOAD_STATES } from '../src/state/upload-record.js';
import { makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState } from './support/gateway.js';
import { meta, TUS } from './support/http.js';
import { fakeStack } from './support/stacks.js';
import { tusUpload } from './support/tus.js';

// ---------------------------------------------------------------------------------------------
// A JSON Schema checker for the subset the document uses. Any other keyword is refused, so that
// a schema the checker does not understand cannot pass unchecked.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };

const ANNOTATIONS = new Set(['description', 'example', 'examples', 'title', 'default']);
const KEYWORDS = new Set(['$ref', 'anyOf', 'type', 'enum', 'const', 'properties', 'required', 'additionalProperties', 'items', 'pattern', 'format', 'minimum', 'maximum']);

const isObject = (v: unknown): v is { [key: string]: Json } => typeof v === 'object' && v !== null && !Array.isArray(v);

function resolveRef(doc: Json, ref: string): Schema {
  assert.ok(ref.startsWith('#/'), `only local $ref: ${ref}`);
  let node: Json | undefined = doc;
  for (const part of ref.slice(2).split('/')) node = isObject(node) ? node[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  assert.ok(isObject(node), `$ref ${ref} resolves`);
  return node;
}

function typeOf(value: Json): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

const FORMATS: Record<string, (s: string) => boolean> = {
  'date-time': (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)),
  uuid: (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s),
};

/** The ways `value` breaks `schema`, as `path: what` lines; empty when it conforms. */
function validate(doc: Json, schema: Schema, value: Json, at = '$'): string[] {
  for (const key of Object.keys(schema)) {
    if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key)) throw new Error(`${at}: the checker does not know the keyword "${key}"`);
  }
  if (typeof schema.$ref === 'string') return validate(doc, resolveRef(doc, schema.$ref), value, at);
  if (Array.isArray(schema.anyOf)) {
    const branches = schema.anyOf.map((branch) => validate(doc, branch as Schema, value, at));
    if (branches.some((errors) => errors.length === 0)) return [];
    return [`${at}: matches none of anyOf`, ...branches.flat()];
  }

  const errors: string[] = [];
  if (schema.type !== undefined) {
    const types = (Array.isArray(schema.type) ? schema.type : [schema.type]) as string[];
    const actual = typeOf(value);
    if (!types.includes(actual) && !(actual === 'integer' && types.includes('number'))) {
      return [`${at}: ${actual} is not ${types.join('|')}`];
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) {
    errors.push(`${at}: ${JSON.stringify(value)} is not ${JSON.stringify(schema.const)}`);
  }
  if (isObject(value)) {
    const properties = isObject(schema.properties) ? schema.properties : {};
    for (const name of (schema.required as string[] | undefined) ?? []) {
      if (!Object.hasOwn(value, name)) errors.push(`${at}: required property "${name}" is missing`);
    }
    for (const [name, v] of Object.entries(value)) {
      const sub = properties[name];
      if (isObject(sub)) errors.push(...validate(doc, sub, v, `${at}.${name}`));
      else if (schema.additionalProperties === false) errors.push(`${at}: property "${name}" is not in the schema`);
      else if (isObject(schema.additionalProperties)) errors.push(...validate(doc, schema.additionalProperties, v, `${at}.${name}`));
    }
  }
  if (Array.isArray(value) && isObject(schema.items)) {
    for (const [i, item] of value.entries()) errors.push(...validate(doc, schema.items as Schema, item, `${at}[${i}]`));
  }
  if (typeof value === 'string') {
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) {
      errors.push(`${at}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    }
    const format = typeof schema.format === 'string' ? FORMATS[schema.format] : undefined;
    if (format && !format(value)) errors.push(`${at}: ${JSON.stringify(value)} is not a ${String(schema.format)}`);
  }
  if (typeof value === 'number' && typeof schema.minimum === 'number' && value < schema.minimum) {
    errors.push(`${at}: ${value} < ${schema.minimum}`);
  }
  if (typeof value === 'number' && typeof schema.maximum === 'number' && value > schema.maximum) {
    errors.push(`${at}: ${value} > ${schema.maximum}`);
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------

const stack = fakeStack();
let dir: string;
let doc: Schema;
/** `METHOD path status` of every answer checked against the document. */
const checked = new Set<string>();
/** Real answers kept for the "the checker catches drift" cases. */
const samples: { receiving?: Json; active?: Json; failed?: Json; error?: Json } = {};
const TOKEN = 'token-a';
const auth = { 'x-auth-token': TOKEN };

/** Check a real answer against the document: the status and content type are documented, the body fits. */
async function conforms(res: Response, path: string, method: string): Promise<Json> {
  const op = (doc.paths as Schema)[path] as Schema | undefined;
  const operation = op?.[method] as Schema | undefined;
  assert.ok(operation, `${method.toUpperCase()} ${path} is documented`);
  const response = (operation.responses as Schema)[String(res.status)] as Schema | undefined;
  const text = await res.text();
  assert.ok(response, `${method.toUpperCase()} ${path} documents status ${res.status} (body: ${text})`);
  const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  const media = (response.content as Schema | undefined)?.[type] as Schema | undefined;
  assert.ok(media, `${method.toUpperCase()} ${path} ${res.status} documents content type ${type}`);
  const body = (type === 'application/json' ? JSON.parse(text) : text) as Json;
  assert.deepEqual(validate(doc, media.schema as Schema, body), [], `${method.toUpperCase()} ${path} ${res.status}: ${text}`);
  checked.add(`${method.toUpperCase()} ${path} ${res.status}`);
  return body;
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const uploadPath = (uploadUrl: string) => new URL(uploadUrl, stack.gw.url).pathname;

before(async () => {
  await stack.ready;
  dir = await tempDir('gw-data-');
  const res = await fetch(`${stack.gw.url}/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  doc = (await res.json()) as Schema;
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test('GET /openapi.json is an OpenAPI 3.1 document of the non-tus endpoints, without a token', async () => {
  assert.match(String(doc.openapi), /^3\.1\.\d+$/);
  const paths = doc.paths as Schema;
  for (const [path, method] of [
    ['/files/{id}/status', 'get'],
    ['/files/{id}/events', 'get'],
    ['/files/{id}/push', 'post'],
    ['/healthz', 'get'],
    ['/readyz', 'get'],
    ['/metrics', 'get'],
  ]) {
    assert.ok(isObject((paths[path!] as Schema | undefined)?.[method!]), `${method} ${path}`);
  }
  const components = doc.components as Schema;
  assert.deepEqual(((components.securitySchemes as Schema).keystoneToken as Schema), {
    type: 'apiKey',
    in: 'header',
    name: 'X-Auth-Token',
    description: ((components.securitySchemes as Schema).keystoneToken as Schema).description!,
  });
  assert.deepEqual(doc.security, [{ keystoneToken: [] }]);
  for (const open of ['/healthz', '/readyz', '/metrics']) assert.deepEqual(((paths[open] as Schema).get as Schema).security, []);
  // The enums are the code's own lists, in full: states, push error codes, answer error codes.
  const schemas = components.schemas as Schema;
  assert.deepEqual((schemas.UploadState as Schema).enum, [...UPLOAD_STATES]);
  assert.deepEqual((schemas.PushErrorCode as Schema).enum, [...PUSH_ERROR_CODES]);
  assert.deepEqual((schemas.ErrorCode as Schema).enum, [...REQUEST_ERROR_CODES]);

  // Every $ref resolves, and every schema uses only what the checker knows.
  const walk = (node: Json): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!isObject(node)) return;
    if (typeof node.$ref === 'string') resolveRef(doc, node.$ref);
    if (isObject(node.schema)) validate(doc, node.schema, null); // throws on an unknown keyword
    Object.values(node).forEach(walk);
  };
  walk(doc);
  for (const [name, schema] of Object.entries(components.schemas as Schema)) {
    const s = schema as Schema;
    for (const required of (s.required as string[] | undefined) ?? []) {
      assert.ok(Object.hasOwn(s.properties as Schema, required), `${name}.${required} is required and described`);
    }
  }
  checked.add('GET /openapi.json 200');
});

test('/healthz and /readyz (200, and 503 with Glance unreachable) fit the document', async () => {
  await conforms(await fetch(`${stack.gw.url}/healthz`), '/healthz', 'get');
  const ready = (await conforms(await fetch(`${stack.gw.url}/readyz`), '/readyz', 'get')) as Schema;
  assert.equal(ready.status, 'ok');

  const unready = await startGateway({ GLANCE_URL: `http://127.0.0.1:${await closedPort()}` });
  try {
    const res = await fetch(`${unready.url}/readyz`);
    assert.equal(res.status, 503);
    const body = (await conforms(res, '/readyz', 'get')) as Schema;
    assert.equal(body.status, 'unavailable');
    assert.equal(body.storage, 'ok');
    assert.notEqual(body.glance, 'ok');
  } finally {
    await unready.close();
  }
});

test('/metrics answers Prometheus text as documented', async () => {
  const res = await fetch(`${stack.gw.url}/metrics`);
  assert.equal(res.status, 200);
  const text = (await conforms(res, '/metrics', 'get')) as string;
  assert.match(text, /^# (HELP|TYPE) /m);
});

test('the status of a receiving upload fits UploadStatus', async () => {
  const image = stack.glance.createImage('project-a');
  const created = await fetch(`${stack.gw.url}/files/`, {
    method: 'POST',
    headers: { ...TUS, ...auth, 'upload-length': String(2 * MiB), 'upload-metadata': meta({ image_id: image.id }) },
  });
  assert.equal(created.status, 201, await created.text());
  const path = created.headers.get('location')!;
  const patch = await fetch(`${stack.gw.url}${path}`, {
    method: 'PATCH',
    headers: { ...TUS, ...auth, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
    body: randomBytes(MiB),
  });
  assert.equal(patch.status, 204, await patch.text());

  const status = (await conforms(await fetch(`${stack.gw.url}${path}/status`, { headers: auth }), '/files/{id}/status', 'get')) as Schema;
  assert.equal(status.state, 'receiving');
  assert.equal(status.glance, null);
  samples.receiving = status;

  // Nothing to push yet: 409.
  const push = await fetch(`${stack.gw.url}${path}/push`, { method: 'POST', headers: auth });
  assert.equal(push.status, 409);
  assert.equal(((await conforms(push, '/files/{id}/push', 'post')) as { error: Schema }).error.code, 'push_not_restartable');
});

test('an active upload: status, events and a refused push fit the document', async () => {
  const file = await makeFile(dir, 'active.raw', 2 * MiB);
  const image = stack.glance.createImage('project-a');
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: TOKEN, metadata: { image_id: image.id } });
  await waitForState(stack.gw.url, uploadUrl, TOKEN, 'active');
  const path = uploadPath(uploadUrl);

  const status = (await conforms(await fetch(`${stack.gw.url}${path}/status`, { headers: auth }), '/files/{id}/status', 'get')) as Schema;
  assert.equal(status.state, 'active');
  assert.equal((status.glance as Schema).status, 'active');
  samples.active = status;

  // The event stream: documented content type, and each event's data is an UploadStatus.
  const abort = new AbortController();
  const events = await fetch(`${stack.gw.url}${path}/events`, { headers: auth, signal: abort.signal });
  assert.equal(events.status, 200);
  const type = (events.headers.get('content-type') ?? '').split(';')[0]!.trim();
  const documented = ((((doc.paths as Schema)['/files/{id}/events'] as Schema).get as Schema).responses as Schema)['200'] as Schema;
  assert.ok(isObject((documented.content as Schema)[type]), `events documents ${type}`);
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  while (!buffer.includes('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
  }
  abort.abort();
  const block = buffer.slice(0, buffer.indexOf('\n\n'));
  assert.equal(/^event: (.*)$/m.exec(block)?.[1], 'status');
  const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as Json;
  assert.deepEqual(validate(doc, (doc.components as { schemas: Schema }).schemas.UploadStatus as Schema, data), []);
  checked.add('GET /files/{id}/events 200');

  const push = await fetch(`${stack.gw.url}${path}/push`, { method: 'POST', headers: auth });
  assert.equal(push.status, 409);
  assert.equal(((await conforms(push, '/files/{id}/push', 'post')) as { error: Schema }).error.code, 'push_not_restartable');
});

test('a failed upload (Glance 403), and its push started again (202), fit the document', async () => {
  const file = await makeFile(dir, 'failed.raw', 2 * MiB);
  const image = stack.glance.createImage('project-a');
  stack.glance.failNextPuts({ kind: 'status', status: 403 });
  const { uploadUrl } = await tusUpload(stack.gw.url, file.path, { token: TOKEN, metadata: { image_id: image.id } });
  await waitForState(stack.gw.url, uploadUrl, TOKEN, 'failed');
  const path = uploadPath(uploadUrl);

  const status = (await conforms(await fetch(`${stack.gw.url}${path}/status`, { headers: auth }), '/files/{id}/status', 'get')) as Schema;
  assert.equal(status.state, 'failed');
  assert.equal((status.error as Schema).httpStatus, 403);
  samples.failed = status;

  const push = await fetch(`${stack.gw.url}${path}/push`, { method: 'POST', headers: auth });
  assert.equal(push.status, 202);
  const restarted = (await conforms(push, '/files/{id}/push', 'post')) as Schema;
  assert.notEqual(restarted.state, 'failed');
  await waitForState(stack.gw.url, uploadUrl, TOKEN, 'active');
});

test('404 (unknown upload) and 401 (no token) on status, events and push fit the Error schema', async () => {
  const unknown = `/files/${'0'.repeat(32)}`;
  for (const [suffix, method] of [
    ['status', 'get'],
    ['events', 'get'],
    ['push', 'post'],
  ] as const) {
    const notFound = await fetch(`${stack.gw.url}${unknown}/${suffix}`, { method: method.toUpperCase(), headers: auth });
    assert.equal(notFound.status, 404);
    const body = (await conforms(notFound, `/files/{id}/${suffix}`, method)) as { error: Schema };
    assert.equal(body.error.code, 'not_found');
    samples.error = body;

    const noToken = await fetch(`${stack.gw.url}${unknown}/${suffix}`, { method: method.toUpperCase() });
    assert.equal(noToken.status, 401);
    assert.equal(((await conforms(noToken, `/files/{id}/${suffix}`, method)) as { error: Schema }).error.code, 'token_missing');
  }
});

test('the checker catches a document that drifts from the answers', () => {
  const { receiving, active, failed, error } = samples;
  assert.ok(receiving && active && failed && error, 'the earlier tests kept their answers');
  const statusOf = (d: Schema) => (d.components as { schemas: Schema }).schemas.UploadStatus as Schema;
  const mutate = (change: (d: Schema) => void): Schema => {
    const copy = structuredClone(doc);
    change(copy);
    return copy;
  };
  const fails = (d: Schema, schema: Schema, value: Json, why: RegExp) => {
    const errors = validate(d, schema, value);
    assert.ok(errors.some((e) => why.test(e)), `expected ${why} among ${JSON.stringify(errors)}`);
  };

  // As served, every kept answer fits.
  for (const value of [receiving, active, failed]) assert.deepEqual(validate(doc, statusOf(doc), value), []);

  // A required field the gateway does not send.
  let d = mutate((x) => (statusOf(x).required as string[]).push('progress'));
  fails(d, statusOf(d), active, /required property "progress" is missing/);
  // A state missing from the enum.
  d = mutate((x) => {
    const schemas = (x.components as { schemas: Schema }).schemas;
    (schemas.UploadState as Schema).enum = (((schemas.UploadState as Schema).enum as string[]).filter((s) => s !== 'failed'));
  });
  fails(d, statusOf(d), failed, /"failed" is not one of/);
  // A field the gateway sends that the schema does not describe.
  d = mutate((x) => delete (statusOf(x).properties as Schema).pushed);
  fails(d, statusOf(d), active, /property "pushed" is not in the schema/);
  // glance not nullable, but null while receiving.
  const nonNull = (s: Schema) => (s.anyOf as Schema[]).find((branch) => branch.type !== 'null')!;
  d = mutate((x) => ((statusOf(x).properties as Schema).glance = nonNull((statusOf(x).properties as Schema).glance as Schema)));
  fails(d, statusOf(d), receiving, /\$\.glance: null is not object/);
  // error.httpStatus as a string.
  d = mutate((x) => ((nonNull((statusOf(x).properties as Schema).error as Schema).properties as Schema).httpStatus = { type: 'string' }));
  fails(d, statusOf(d), failed, /\$\.error\.httpStatus: integer is not string/);
  // A push error code the enum does not list.
  fails(doc, statusOf(doc), { ...(failed as Schema), error: { code: 'glance_sulks', message: 'no' } }, /"glance_sulks" is not one of/);
  // A wrong date format or a wrong id pattern.
  fails(doc, statusOf(doc), { ...(active as Schema), createdAt: 'yesterday' }, /createdAt: "yesterday" is not a date-time/);
  fails(doc, statusOf(doc), { ...(active as Schema), id: 'nope' }, /\$\.id: "nope" does not match/);
  // The error body.
  const errorSchema = (doc.components as { schemas: Schema }).schemas.Error as Schema;
  fails(doc, errorSchema, { error: { code: 'not_found' } }, /required property "message" is missing/);
  fails(doc, errorSchema, { message: 'flat' }, /required property "error" is missing/);
  // A keyword the checker does not know is refused, not skipped.
  assert.throws(() => validate(doc, { oneOf: [] }, null), /does not know the keyword "oneOf"/);
});

test('every documented answer was checked against a real one', () => {
  const documented: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Schema)) {
    for (const [method, operation] of Object.entries(item as Schema)) {
      for (const status of Object.keys((operation as Schema).responses as Schema)) documented.push(`${method.toUpperCase()} ${path} ${status}`);
    }
  }
  assert.deepEqual(documented.filter((d) => !checked.has(d)), []);
});
