import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HEAD_BYTES,
  TAIL_BYTES,
  inspectHead,
  inspectTail,
  needsTail,
  type Verdict,
} from '../src/ingest/content/inspect.js';

// Real images from qemu-img; name -> [qemu-img create args after the file name, format it should pass as].
const IMAGES = {
  qcow2v3: { args: ['-f', 'qcow2'], format: 'qcow2' },
  qcow2v2: { args: ['-f', 'qcow2', '-o', 'compat=0.10'], format: 'qcow2' },
  vmdkSparse: { args: ['-f', 'vmdk'], format: 'vmdk' },
  vmdkFlat: { args: ['-f', 'vmdk', '-o', 'subformat=monolithicFlat'], format: 'vmdk' },
  vhdx: { args: ['-f', 'vhdx'], format: 'vhdx' },
  vdi: { args: ['-f', 'vdi'], format: 'vdi' },
  qed: { args: ['-f', 'qed'], format: 'qed' },
  vhdDynamic: { args: ['-f', 'vpc'], format: 'vhd' },
  vhdFixed: { args: ['-f', 'vpc', '-o', 'subformat=fixed'], format: 'vhd' },
  raw: { args: ['-f', 'raw'], format: 'raw' },
} as const;
type ImageName = keyof typeof IMAGES | 'backing' | 'dataFile' | 'qcow1';
const CONTAINER_IMAGES = ['qcow2v3', 'qcow2v2', 'vmdkSparse', 'vmdkFlat', 'vhdx', 'vdi', 'qed', 'vhdDynamic'] as const;
const DECLARABLE = ['qcow2', 'vmdk', 'vhdx', 'vdi', 'qed', 'vhd', 'iso'] as const;

let dir = '';
const files = {} as Record<ImageName, string>;

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

before(() => {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('qemu-img not found: install qemu-utils (apt-get install qemu-utils); these tests need real images');
  }
  dir = mkdtempSync(join(tmpdir(), 'content-inspect-'));
  for (const [name, { args }] of Object.entries(IMAGES)) {
    files[name as ImageName] = join(dir, name);
    qemuImg('create', ...args, join(dir, name), '1M');
  }
  files.backing = join(dir, 'backing');
  qemuImg('create', '-f', 'qcow2', '-b', files.qcow2v3, '-F', 'qcow2', files.backing);
  files.dataFile = join(dir, 'dataFile');
  qemuImg('create', '-f', 'qcow2', '-o', `data_file=${join(dir, 'dataFile.raw')}`, files.dataFile, '1M');
  files.qcow1 = join(dir, 'qcow1');
  qemuImg('create', '-f', 'qcow', files.qcow1, '1M');
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function readAt(path: string, position: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    return buf.subarray(0, readSync(fd, buf, 0, length, position));
  } finally {
    closeSync(fd);
  }
}

interface Sample {
  head: Buffer;
  tail: Buffer;
  size: number;
}

function sample(name: ImageName): Sample {
  const path = files[name];
  const size = statSync(path).size;
  return { head: readAt(path, 0, HEAD_BYTES), tail: readAt(path, Math.max(0, size - TAIL_BYTES), TAIL_BYTES), size };
}

function fromBuffer(data: Buffer): Sample {
  return { head: data.subarray(0, HEAD_BYTES), tail: data.subarray(Math.max(0, data.length - TAIL_BYTES)), size: data.length };
}

/** What the gateway does once an upload is complete: head, then tail if asked for. */
function judge(format: string, s: Sample): Verdict {
  const head = inspectHead(format, s.head, s.size, s.head.length === s.size);
  if (head.kind !== 'ok' || !needsTail(format, s.head)) return head;
  return inspectTail(format, s.tail);
}

function assertReject(v: Verdict, pattern: RegExp): void {
  assert.equal(v.kind, 'reject', `expected reject matching ${pattern}, got ${JSON.stringify(v)}`);
  if (v.kind === 'reject') assert.match(v.reason, pattern);
}

/** Deterministic noise so a failure reproduces. */
function noise(length: number, seed = 0x9e3779b9): Buffer {
  const buf = Buffer.alloc(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

function isoLike(): Buffer {
  const data = noise(64 * 1024);
  data.fill(0, 0, 32768); // ISO9660 system area
  data[32768] = 1; // primary volume descriptor type
  data.write('CD001', 32769, 'latin1');
  return data;
}

describe('real images declared as their own format', () => {
  for (const [name, { format }] of Object.entries(IMAGES)) {
    it(`${name} is ok as ${format}`, () => {
      assert.deepEqual(judge(format, sample(name as ImageName)), { kind: 'ok' });
    });
  }

  it('only a fixed vhd needs the tail, and its tail is ok', () => {
    const fixed = sample('vhdFixed');
    assert.deepEqual(inspectHead('vhd', fixed.head, fixed.size, false), { kind: 'ok' });
    assert.equal(needsTail('vhd', fixed.head), true);
    assert.deepEqual(inspectTail('vhd', fixed.tail), { kind: 'ok' });
    assert.equal(needsTail('vhd', sample('vhdDynamic').head), false);
    assert.equal(needsTail('raw', fixed.head), false);
  });

  it('an ISO9660 buffer is ok as iso and as raw', () => {
    assert.deepEqual(judge('iso', fromBuffer(isoLike())), { kind: 'ok' });
    assert.deepEqual(judge('raw', fromBuffer(isoLike())), { kind: 'ok' });
  });
});

describe('containers declared as something else', () => {
  const label: Record<(typeof CONTAINER_IMAGES)[number], string> = {
    qcow2v3: 'qcow2',
    qcow2v2: 'qcow2',
    vmdkSparse: 'vmdk',
    vmdkFlat: 'vmdk',
    vhdx: 'vhdx',
    vdi: 'vdi',
    qed: 'qed',
    vhdDynamic: 'vhd',
  };
  for (const name of CONTAINER_IMAGES) {
    it(`${name} is refused as raw, naming ${label[name]}`, () => {
      assertReject(judge('raw', sample(name)), new RegExp(`^data is ${label[name]} but disk_format is raw$`));
    });
    it(`${name} is refused as every other inspectable format`, () => {
      for (const format of DECLARABLE.filter((f) => f !== label[name])) {
        assertReject(judge(format, sample(name)), new RegExp(`data is ${label[name]} but disk_format is ${format}`));
      }
    });
  }

  it('a fixed vhd is plain data at the head, so raw accepts it', () => {
    assert.deepEqual(judge('raw', sample('vhdFixed')), { kind: 'ok' });
  });

  it('qcow (v1) is refused as qcow2 and raw, accepted as qcow', () => {
    assertReject(judge('qcow2', sample('qcow1')), /qcow \(version 1\), not qcow2/);
    assertReject(judge('raw', sample('qcow1')), /^data is qcow but disk_format is raw$/);
    assert.deepEqual(judge('qcow', sample('qcow1')), { kind: 'ok' });
  });
});

describe('random bytes', () => {
  const random = fromBuffer(noise(1024 * 1024));
  for (const format of DECLARABLE.filter((f) => f !== 'vhd')) {
    it(`are refused as ${format} at the head`, () => {
      assertReject(inspectHead(format, random.head, random.size, false), new RegExp(`^data is not ${format} \\(`));
    });
  }
  it('as vhd: head ok for now, then the tail refuses', () => {
    assert.deepEqual(inspectHead('vhd', random.head, random.size, false), { kind: 'ok' });
    assert.equal(needsTail('vhd', random.head), true);
    assertReject(inspectTail('vhd', random.tail), /^data is not vhd \(no conectix footer\)$/);
  });
  it('are fine as raw', () => {
    assert.deepEqual(judge('raw', random), { kind: 'ok' });
  });
});

describe('qcow2 references to other files', () => {
  it('a backing file is refused', () => {
    assertReject(judge('qcow2', sample('backing')), /backing file/);
  });
  it('an external data file is refused', () => {
    assertReject(judge('qcow2', sample('dataFile')), /external data file/);
  });
  it('the data-file header extension alone is refused (feature bit cleared)', () => {
    const s = sample('dataFile');
    const head = Buffer.from(s.head);
    head.writeBigUInt64BE(0n, 72);
    assertReject(inspectHead('qcow2', head, s.size, false), /external data file/);
  });
  it('the data-file feature bit alone is refused (no extension)', () => {
    const s = sample('qcow2v3');
    const head = Buffer.from(s.head);
    head.writeBigUInt64BE(4n, 72);
    assertReject(inspectHead('qcow2', head, s.size, false), /external data file/);
  });
  it('a second magic in the header (qcow2 + vdi polyglot) is refused', () => {
    const s = sample('qcow2v3');
    const head = Buffer.from(s.head);
    head.writeUInt32LE(0xbeda107f, 0x40);
    assertReject(inspectHead('qcow2', head, s.size, false), /both qcow2 and vdi/);
  });
});

// A v3 header's extensions start at header_length (bytes 100..104) and run until an end
// marker, so a 100-byte v3 head cannot rule out a data-file extension yet. A v2 head
// has its extension area at 72, which qemu leaves empty: 100 bytes are enough.
describe('partial heads', () => {
  const at = (name: ImageName, n: number, complete = false): Verdict => {
    const s = sample(name);
    return inspectHead('qcow2', s.head.subarray(0, n), s.size, complete);
  };
  it('100 bytes of qcow2 v3: need-more (header extensions still unread)', () => {
    assert.deepEqual(at('qcow2v3', 100), { kind: 'need-more' });
  });
  it('qcow2 v3 decides exactly when its end-of-extensions marker has arrived', () => {
    const s = sample('qcow2v3');
    let first = -1;
    for (let n = 0; n <= 1024 && first < 0; n++) {
      if (inspectHead('qcow2', s.head.subarray(0, n), s.size, false).kind !== 'need-more') first = n;
    }
    // header_length 112, feature-name table (8 + 384 bytes), then the 8-byte end marker.
    assert.equal(first, 512);
    assert.deepEqual(at('qcow2v3', 512), { kind: 'ok' });
  });
  it('100 bytes of qcow2 v2: ok already', () => {
    assert.deepEqual(at('qcow2v2', 100), { kind: 'ok' });
  });
  it('100 bytes suffice to refuse a backing file or a data file', () => {
    assertReject(at('backing', 100), /backing file/);
    assertReject(at('dataFile', 100), /external data file/);
  });
  it('a qcow2 file that ends after 100 bytes is refused as truncated', () => {
    assertReject(at('qcow2v3', 100, true), /truncated/);
  });
  it('a few bytes: need-more until each magic can be told apart', () => {
    const zeros = Buffer.alloc(100);
    // The vdi magic sits at 64: one differing byte there is enough to rule it out.
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 64), 1 << 20, false), { kind: 'need-more' });
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 65), 1 << 20, false), { kind: 'ok' });
    zeros.writeUInt32LE(0xbeda107f, 64);
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 67), 1 << 20, false), { kind: 'need-more' });
    assertReject(inspectHead('raw', zeros.subarray(0, 68), 1 << 20, false), /^data is vdi but disk_format is raw$/);
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 10), 10, false), { kind: 'ok' }, 'declared size says nothing more comes');
    assert.deepEqual(inspectHead('qcow2', Buffer.from('QF', 'latin1'), 1 << 20, false), { kind: 'need-more' });
    assertReject(inspectHead('qcow2', Buffer.from('QX', 'latin1'), 1 << 20, false), /^data is not qcow2/);
    assert.deepEqual(inspectHead('vhd', Buffer.from('conec', 'latin1'), 1 << 20, false), { kind: 'need-more' });
  });
  it('iso waits for byte 32774, or refuses if the file ends first', () => {
    const iso = isoLike();
    assert.deepEqual(inspectHead('iso', iso.subarray(0, 32773), iso.length, false), { kind: 'need-more' });
    assert.deepEqual(inspectHead('iso', iso.subarray(0, 32774), iso.length, false), { kind: 'ok' });
    assertReject(inspectHead('iso', iso.subarray(0, 32773), 32773, true), /^data is not iso/);
  });
});

describe('tiny complete files', () => {
  for (const format of DECLARABLE) {
    it(`empty file is refused as ${format}`, () => {
      assertReject(judge(format, fromBuffer(Buffer.alloc(0))), new RegExp(`data is not ${format}`));
    });
  }
  it('empty file and a 3-byte file are fine as raw', () => {
    assert.deepEqual(judge('raw', fromBuffer(Buffer.alloc(0))), { kind: 'ok' });
    assert.deepEqual(judge('raw', fromBuffer(Buffer.from('QFI', 'latin1'))), { kind: 'ok' });
  });
  it('a magic cut short is refused as that format', () => {
    assertReject(judge('qcow2', fromBuffer(Buffer.from('QFI', 'latin1'))), /^data is not qcow2 \(no QFI\\xfb magic\)$/);
    assertReject(judge('vhd', fromBuffer(Buffer.from('conecti', 'latin1'))), /^data is not vhd/);
  });
  it('a small complete fixed vhd is judged at the head from its own footer', () => {
    const footer = sample('vhdFixed').tail;
    const data = Buffer.concat([Buffer.alloc(1024), footer]);
    assert.deepEqual(inspectHead('vhd', data, data.length, true), { kind: 'ok' });
    assertReject(inspectHead('vhd', Buffer.alloc(1536), 1536, true), /^data is not vhd/);
  });
});

describe('vmdk descriptors', () => {
  const text = (s: string) => fromBuffer(Buffer.from(s, 'latin1'));
  const descriptor = '\n  # written by a tool\n\n# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n';
  it('leading blank and comment lines are allowed', () => {
    assert.deepEqual(judge('vmdk', text(descriptor)), { kind: 'ok' });
    assertReject(judge('raw', text(descriptor)), /^data is vmdk but disk_format is raw$/);
  });
  it('other text is not a descriptor', () => {
    assertReject(judge('vmdk', text('hello\n# Disk DescriptorFile\n')), /^data is not vmdk/);
    assert.deepEqual(judge('raw', text('# just a comment\nversion=1\n')), { kind: 'ok' });
  });
  it('a head that is only comments so far needs more', () => {
    assert.deepEqual(inspectHead('raw', Buffer.from('# comment\n# Disk Desc', 'latin1'), 4096, false), { kind: 'need-more' });
  });
});

describe('formats the gateway cannot inspect', () => {
  const formats = ['zvhd', 'zvhd2', 'qcow', 'ploop', 'ami', 'aki', 'ari', 'something-new'];
  for (const format of formats) {
    it(`${format} is always ok`, () => {
      for (const data of [Buffer.alloc(0), noise(4096), Buffer.from('QFI\xfb', 'latin1')]) {
        assert.deepEqual(inspectHead(format, data, 1 << 20, false), { kind: 'ok' });
        assert.deepEqual(inspectHead(format, data, data.length, true), { kind: 'ok' });
        assert.equal(needsTail(format, data), false);
        assert.deepEqual(inspectTail(format, data), { kind: 'ok' });
      }
    });
  }
});
