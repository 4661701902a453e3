// docs/ against the code: the error table against src/error-codes.ts, the configuration against
// src/config.ts, and every relative link. UPDATE_DOCS=1 rewrites docs/errors.md's generated table.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ERRORS } from '@tus/utils';
import { loadConfig } from '../src/config.js';
import { ERROR_CODES, REQUEST_ERROR_CODES, TUS_REFUSALS, type ErrorCode, type ErrorCodeSpec } from '../src/error-codes.js';
import * as errors from '../src/errors.js';
import { tusAnswer } from '../src/http/tus-errors.js';

const root = path.resolve(import.meta.dirname, '..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

const BEGIN = '<!-- generated from src/error-codes.ts: begin -->';
const END = '<!-- generated from src/error-codes.ts: end -->';

function statusCell(spec: ErrorCodeSpec): string {
  if (spec.status === null) return '–';
  return spec.passesOn ? `${spec.passesOn} 4xx (else ${spec.status})` : String(spec.status);
}

/** The table docs/errors.md must hold between its markers. */
function renderTable(): string {
  const rows = Object.entries(ERROR_CODES).map(
    ([code, spec]) => `| \`${code}\` | ${statusCell(spec)} | ${spec.push ? 'yes' : ''} | ${spec.meaning} |`,
  );
  return ['| code | HTTP status | in the status object | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** The backticked name opening each row of a markdown table. */
function rowNames(markdown: string): string[] {
  return [...markdown.matchAll(/^\| `([A-Za-z_][A-Za-z0-9_]*)` \|/gm)].map((m) => m[1]!);
}

/** What is in one list and not the other, as two readable lists. */
function compare(documented: string[], actual: string[]): { missing: string[]; unknown: string[] } {
  return { missing: actual.filter((n) => !documented.includes(n)), unknown: documented.filter((n) => !actual.includes(n)) };
}

test('docs/errors.md lists every code of the table, and no other', () => {
  let doc = read('docs/errors.md');
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  assert.ok(start >= 0 && end > start, 'docs/errors.md has the generated-table markers');
  const expected = renderTable();
  if (process.env.UPDATE_DOCS === '1') {
    doc = `${doc.slice(0, start + BEGIN.length)}\n${expected}\n${doc.slice(end)}`;
    fs.writeFileSync(path.join(root, 'docs/errors.md'), doc);
  }
  const block = doc.slice(start + BEGIN.length, doc.indexOf(END)).trim();
  const names = rowNames(block);
  assert.deepEqual(compare(names, Object.keys(ERROR_CODES)), { missing: [], unknown: [] }, 'codes in docs/errors.md against the table');
  assert.equal(new Set(names).size, names.length, 'each code once');
  assert.equal(block, expected, 'docs/errors.md holds the table as generated (UPDATE_DOCS=1 rewrites it)');
});

test('codes cited with a status elsewhere in the docs are the table\'s, with its status', () => {
  const cited: [string, string, string][] = [];
  for (const file of ['README.md', 'docs/api.md', 'docs/security.md', 'docs/configuration.md']) {
    const text = read(file);
    // "`413` (`quota_exceeded`)" in prose.
    for (const [, status, code] of text.matchAll(/`(\d{3})` \(`([a-z_]+)`\)/g)) cited.push([file, code!, status!]);
    // "| case | 400 / 413 | `invalid_length` / `too_large` |" in refusal tables.
    for (const [, statuses, codes] of text.matchAll(/^\|[^|\n]*\| ([^|\n]*) \| (`[a-z_]+`(?: \/ `[a-z_]+`)*) \|$/gm)) {
      const each = statuses!.split(' / ');
      for (const [i, code] of codes!.split(' / ').entries()) cited.push([file, code.slice(1, -1), each[Math.min(i, each.length - 1)]!]);
    }
  }
  assert.ok(cited.length > 20, `citations found: ${cited.length}`);
  for (const [file, code, status] of cited) {
    assert.ok(code in ERROR_CODES, `${file} cites ${code}, which the table does not have`);
    const spec: ErrorCodeSpec = ERROR_CODES[code as ErrorCode];
    const expected = spec.passesOn ? /4xx/ : new RegExp(`^${spec.status}$`);
    assert.match(status, expected, `${file} cites ${code} as ${status}`);
  }
});

test('docs/configuration.md lists every variable src/config.ts reads, and no other; documented defaults are the defaults', () => {
  // loadConfig reads exactly its schema's variables: record them.
  const seen: string[] = [];
  loadConfig(new Proxy({}, { get: (_t, name) => (typeof name === 'string' && seen.push(name), undefined) }));
  const variables = [...new Set(seen)];
  assert.ok(variables.includes('PORT') && variables.length > 10, `variables read: ${variables.join(' ')}`);

  const doc = read('docs/configuration.md');
  const names = rowNames(doc);
  assert.deepEqual(compare(names, variables), { missing: [], unknown: [] }, 'variables in docs/configuration.md against src/config.ts');
  assert.equal(new Set(names).size, names.length, 'each variable once');

  // A default written as a value must change nothing when given explicitly.
  const defaults = loadConfig({});
  for (const [, name, cell] of doc.matchAll(/^\| `([A-Z_0-9]+)` \| ([^|]*) \|/gm)) {
    const value = /^`([^`]*)`/.exec(cell!.trim())?.[1];
    if (value === undefined) continue; // "unset", with the meaning saying what that means
    assert.deepEqual(loadConfig({ [name!]: value }), defaults, `${name}=${value} is the default`);
  }
});

test('the table drives the answers: error classes, tus refusals, tus plain-text answers', () => {
  // Each GatewayError class answers its code with the table's status.
  type ErrorClass = new (message: string) => errors.GatewayError;
  const classes = (Object.values(errors) as unknown[]).filter(
    (v): v is ErrorClass => typeof v === 'function' && v.prototype instanceof errors.GatewayError,
  );
  assert.ok(classes.length >= 15);
  for (const Class of classes) {
    const { status, body } = errors.toHttpError(new Class('x'));
    assert.ok(REQUEST_ERROR_CODES.includes(body.error.code), `${Class.name}: ${body.error.code}`);
    assert.equal(status, ERROR_CODES[body.error.code].status, Class.name);
  }
  // A refusal @tus/server raises is known by its ERRORS entry, whether as the object or as its answer.
  for (const key of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) {
    const code: ErrorCode = TUS_REFUSALS[key];
    const http = errors.toHttpError(ERRORS[key]);
    assert.deepEqual([http.status, http.body.error.code], [ERROR_CODES[code].status, code], key);
    assert.deepEqual(tusAnswer(ERRORS[key].status_code, ERRORS[key].body), http, `${key} as plain text`);
  }
  // What tus writes with no ERRORS entry.
  const codeOf = (status: number, text: string) => tusAnswer(status, text).body.error.code;
  assert.equal(codeOf(412, 'Tus-Resumable Required\n'), 'tus_resumable_required');
  assert.equal(codeOf(400, 'Invalid upload-offset upload-length\n'), 'invalid_length');
  assert.equal(codeOf(400, 'Invalid upload-metadata\n'), 'invalid_metadata');
  assert.equal(codeOf(400, 'Invalid x-forwarded-proto\n'), 'invalid_header');
  assert.equal(codeOf(404, 'Not found\n'), 'not_found');
  // Text that only resembles an entry is not that entry.
  assert.equal(codeOf(409, 'Upload-Offset conflict'), 'bad_request');
  assert.equal(tusAnswer(409, 'Upload-Offset conflict').status, 409);
  // Glance's own 4xx passes on; a code without one keeps the table's status.
  assert.equal(errors.toHttpError(new errors.GlanceRefusedError('no', 403)).status, 403);
  assert.equal(errors.toHttpError(new errors.NotFoundError('no', 403)).status, 404);
  assert.deepEqual(errors.toHttpError(new Error('secret')).body, { error: { code: 'internal', message: 'internal error' } });
});

test('every relative link in README.md and docs/ points at a file that exists', () => {
  const files = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  for (const file of files) {
    for (const [, target] of read(file).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      assert.ok(fs.existsSync(path.join(root, path.dirname(file), target!)), `${file} links ${target}`);
    }
  }
});
