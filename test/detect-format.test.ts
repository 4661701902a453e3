// One disk format guess for the CLI and the browser page: the gateway's content inspection, served to the page as it is.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { detectFormat } from '../src/ingest/content/detect.js';
import { tempDir } from './support/gateway.js';
import { fakeStack } from './support/stacks.js';

const stack = fakeStack();

const at = (size: number, offset: number, magic: string) => {
  const buffer = Buffer.alloc(size, 0x5a);
  buffer.write(magic, offset, 'latin1');
  return buffer;
};
const tailOf = (b: Buffer) => b.subarray(-512);

const CASES: [string, Buffer][] = [
  ['qcow2', at(4096, 0, 'QFI\xfb\0\0\0\x03')],
  ['qcow', at(4096, 0, 'QFI\xfb\0\0\0\x01')],
  ['vmdk', at(4096, 0, '# a comment\n# Disk DescriptorFile\n')],
  ['vhdx', at(4096, 0, 'vhdxfile')],
  ['vdi', at(4096, 0x40, '\x7f\x10\xda\xbe')],
  ['qed', at(4096, 0, 'QED\0')],
  ['vhd', at(4096, 0, 'conectix')],
  ['vhd', at(4096, 4096 - 512, 'conectix')], // fixed VHD: the footer only
  ['iso', at(40960, 32769, 'CD001')],
  ['luks', at(4096, 0, 'LUKS\xba\xbe\0\x01')], // qemu would open it; Glance has no such disk_format
  ['raw', at(4096, 0, 'nothing here')],
  ['raw', Buffer.alloc(0)],
];

test('detectFormat names what qemu would probe, then a VHD footer, then iso, else raw', () => {
  for (const [format, data] of CASES) assert.equal(detectFormat(data, tailOf(data)), format, format);
});

test('every content module can run in a browser: only relative imports inside the folder, no Node API', async () => {
  const dir = path.join(import.meta.dirname, '../src/ingest/content');
  for (const name of await fsp.readdir(dir)) {
    const source = await fsp.readFile(path.join(dir, name), 'utf8');
    for (const [, spec] of source.matchAll(/from '([^']+)'/g)) assert.match(spec!, /^\.\/[a-z0-9-]+\.js$/, `${name} imports ${spec}`);
    assert.doesNotMatch(source.replace(/^\s*\/\/.*$/gm, ''), /\bBuffer\b|\bprocess\b|node:/, `${name} uses Node`);
  }
});

test('the gateway serves the modules the page imports, under the page CSP, and they guess as the gateway does', async () => {
  const dir = await tempDir('gw-page-modules-');
  try {
    // Fetch detect.js and what it imports, as the browser would, then run the fetched code.
    const pending = ['detect.js'];
    const seen = new Set<string>();
    for (let name; (name = pending.pop()); ) {
      if (seen.has(name)) continue;
      seen.add(name);
      const res = await fetch(`${stack.gw.url}/ui/content/${name}`);
      assert.equal(res.status, 200, name);
      assert.match(res.headers.get('content-type')!, /^text\/javascript/);
      assert.match(res.headers.get('content-security-policy')!, /script-src 'self'/);
      const code = await res.text();
      await fsp.writeFile(path.join(dir, name), code);
      for (const [, spec] of code.matchAll(/from '\.\/([^']+)'/g)) pending.push(spec!);
    }
    assert.ok(seen.has('magic.js') && seen.has('bytes.js'), [...seen].join(', '));
    await fsp.writeFile(path.join(dir, 'package.json'), '{"type":"module"}');
    const served = (await import(pathToFileURL(path.join(dir, 'detect.js')).href)) as typeof import('../src/ingest/content/detect.js');
    for (const [format, data] of CASES) assert.equal(served.detectFormat(new Uint8Array(data), new Uint8Array(tailOf(data))), format, format);

    assert.equal((await fetch(`${stack.gw.url}/ui/content/nothing.js`)).status, 404);
    assert.equal((await fetch(`${stack.gw.url}/ui/content/..%2Fguarded-store.js`)).status, 404);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
