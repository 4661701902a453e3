import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEAD_BYTES, TAIL_BYTES, inspectHead, inspectStored, inspectTail, needsTail, type Verdict } from '../src/ingest/content/inspect.js';
import { differencingVhd, edited, foreignHeader, isoLike, makeImages, noise, VALID_IMAGES, vhdxWithParent, vmdkDescriptor, withVmdkDescriptor } from './support/qemu.js';

// Image -> the format its magic names.
const CONTAINER_IMAGES = {
  qcow2v3: 'qcow2', qcow2v2: 'qcow2', vmdkSparse: 'vmdk', vmdkFlat: 'vmdk', vhdx: 'vhdx', vdi: 'vdi', qed: 'qed', vhdDynamic: 'vhd',
};
const DECLARABLE = ['qcow2', 'vmdk', 'vhdx', 'vdi', 'qed', 'vhd', 'iso'] as const;
const OK = { kind: 'ok' };

let dir = '';
let img: Record<string, Buffer> = {};
before(() => void (img = makeImages((dir = mkdtempSync(join(tmpdir(), 'content-inspect-'))))));
after(() => dir && rmSync(dir, { recursive: true, force: true }));

const headOf = (data: Buffer) => data.subarray(0, HEAD_BYTES);

/** What the gateway's head gate and tail check decide once an upload is complete. */
function judge(format: string, data: Buffer): Verdict {
  const head = headOf(data);
  const verdict = inspectHead(format, head, data.length, head.length === data.length);
  if (verdict.kind !== 'ok' || !needsTail(format, head)) return verdict;
  return inspectTail(format, data.subarray(Math.max(0, data.length - TAIL_BYTES)));
}

const stored = (format: string, data: Buffer) =>
  inspectStored(format, data.length, async (start, length) => data.subarray(start, start + length));

function assertReject(v: Verdict, pattern: RegExp): void {
  assert.equal(v.kind, 'reject', `expected reject matching ${pattern}, got ${JSON.stringify(v)}`);
  if (v.kind === 'reject') assert.match(v.reason, pattern);
}

describe('real images declared as their own format', () => {
  for (const [name, { format }] of Object.entries(VALID_IMAGES)) {
    it(`${name} is ok as ${format}, at the head and as a stored file`, async () => {
      assert.deepEqual(judge(format, img[name]!), OK);
      assert.deepEqual(await stored(format, img[name]!), OK);
    });
  }
  it('a streamOptimized vmdk converted from data (qemu-img keeps the grain directory in the header) is ok', async () => {
    assert.deepEqual(await stored('vmdk', img.vmdkStreamData!), OK);
  });
  it('only a fixed vhd needs the tail, and its tail is ok', () => {
    const fixed = img.vhdFixed!;
    assert.deepEqual(inspectHead('vhd', headOf(fixed), fixed.length, false), OK);
    assert.equal(needsTail('vhd', headOf(fixed)), true);
    assert.deepEqual(inspectTail('vhd', fixed.subarray(-TAIL_BYTES)), OK);
    assert.equal(needsTail('vhd', headOf(img.vhdDynamic!)), false);
    assert.equal(needsTail('raw', headOf(fixed)), false);
  });
  it('a fixed vhd larger than the head is judged by its real footer once complete', () => {
    assert.ok(img.vhdFixed!.length > HEAD_BYTES);
    assert.deepEqual(inspectHead('vhd', headOf(img.vhdFixed!), img.vhdFixed!.length, true), OK);
  });
  it('an ISO9660 buffer is ok as iso and as raw', async () => {
    assert.deepEqual(judge('iso', isoLike()), OK);
    assert.deepEqual(await stored('raw', isoLike()), OK);
  });
});

describe('containers declared as something else', () => {
  for (const [name, label] of Object.entries(CONTAINER_IMAGES)) {
    it(`${name} is refused as raw and as every other inspectable format, naming ${label}`, () => {
      assertReject(judge('raw', img[name]!), new RegExp(`^data is ${label} but disk_format is raw$`));
      for (const format of DECLARABLE.filter((f) => f !== label)) {
        assertReject(judge(format, img[name]!), new RegExp(`data is ${label} but disk_format is ${format}`));
      }
    });
  }
  it('a fixed vhd is plain data at the head, so raw accepts it', () => {
    assert.deepEqual(judge('raw', img.vhdFixed!), OK);
  });
  it('qcow (v1) is refused as qcow2 and raw, accepted as qcow', () => {
    assertReject(judge('qcow2', img.qcow1!), /qcow \(version 1\), not qcow2/);
    assertReject(judge('raw', img.qcow1!), /^data is qcow but disk_format is raw$/);
    assert.deepEqual(judge('qcow', img.qcow1!), OK);
  });
});

describe('random bytes', () => {
  const random = noise(1024 * 1024);
  for (const format of DECLARABLE.filter((f) => f !== 'vhd')) {
    it(`are refused as ${format} at the head`, () => {
      assertReject(inspectHead(format, headOf(random), random.length, false), new RegExp(`^data is not ${format} \\(`));
    });
  }
  it('as vhd: head ok for now, then the tail refuses', () => {
    assert.deepEqual(inspectHead('vhd', headOf(random), random.length, false), OK);
    assert.equal(needsTail('vhd', headOf(random)), true);
    assertReject(inspectTail('vhd', random.subarray(-TAIL_BYTES)), /^data is not vhd \(no conectix footer\)$/);
  });
  it('are fine as raw', () => assert.deepEqual(judge('raw', random), OK));
});

describe('qcow2 and qed: other files and unknown features', () => {
  it('a qcow2 backing file is refused', () => assertReject(judge('qcow2', img.backing!), /backing file/));
  it('a qcow2 external data file is refused', () => assertReject(judge('qcow2', img.dataFile!), /external data file/));
  it('the data-file header extension alone is refused (feature bit cleared)', () => {
    assertReject(judge('qcow2', edited(img.dataFile!, (b) => b.writeBigUInt64BE(0n, 72))), /external data file/);
  });
  it('the data-file feature bit alone is refused (no extension)', () => {
    assertReject(judge('qcow2', edited(img.qcow2v3!, (b) => b.writeBigUInt64BE(4n, 72))), /external data file/);
  });
  it('an incompatible feature Glance does not know is refused: extended L2 from qemu-img, and bit 5', () => {
    assertReject(judge('qcow2', img.extendedL2!), /^qcow2 image uses unknown incompatible features \(0x10\)$/);
    assertReject(judge('qcow2', edited(img.qcow2v3!, (b) => b.writeBigUInt64BE(0x20n, 72))), /\(0x20\)/);
  });
  it('a second magic in the header (qcow2 + vdi polyglot) is refused', () => {
    assertReject(judge('qcow2', edited(img.qcow2v3!, (b) => b.writeUInt32LE(0xbeda107f, 0x40))), /both qcow2 and vdi/);
  });
  it('a qed backing file is refused from the first 24 bytes', () => {
    assertReject(inspectHead('qed', img.qedBacking!.subarray(0, 24), img.qedBacking!.length, false), /^qed image has a backing file$/);
  });
  it('qed: an unknown feature is refused, the need-check feature is not', () => {
    assertReject(judge('qed', edited(img.qed!, (b) => b.writeBigUInt64LE(8n, 16))), /^qed image uses unknown features \(0x8\)$/);
    assert.deepEqual(judge('qed', edited(img.qed!, (b) => b.writeBigUInt64LE(2n, 16))), OK);
  });
});

describe('vmdk: only a sparse file that carries everything itself', () => {
  const sparse = () => img.vmdkSparse!;
  const desc = (opts: Parameters<typeof vmdkDescriptor>[0]) => withVmdkDescriptor(sparse(), vmdkDescriptor(opts));
  const header = (offset: number, value: bigint) => edited(sparse(), (b) => b.writeBigUInt64LE(value, offset));
  const hostFile = '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n';
  const cases: [string, () => Buffer, RegExp][] = [
    ['a text descriptor naming a host file', () => Buffer.from(hostFile), /^vmdk is a text descriptor only/],
    ['the monolithicFlat descriptor qemu-img writes', () => img.vmdkFlat!, /^vmdk is a text descriptor only/],
    ['a VMDK3 (COWD) extent', () => edited(sparse(), (b) => b.write('COWD', 0)), /COWD/],
    ['qemu-img -b (parent by absolute path)', () => img.vmdkParent!, /^vmdk image has a parent \(parentFileNameHint\)$/],
    ['qemu-img -b (parent by relative name)', () => img.vmdkParentRel!, /has a parent \(parentFileNameHint\)/],
    ['a parentCID without a file name', () => desc({ extra: 'parentCID=1234abcd' }), /parent \(parentCID is not ffffffff\)/],
    ['a parentFileNameHint in a comment (qemu still reads it)', () => desc({ extra: '# parentFileNameHint="x"' }), /parentFileNameHint/],
    ['an extent naming a host path', () => desc({ extent: 'RW 2048 FLAT "/dev/sda" 0' }), /^vmdk extent names a file path/],
    ['a line that is none of the known kinds', () => desc({ extra: 'include /etc/passwd' }), /^vmdk descriptor line 6 is not/],
    ['no extent', () => desc({ extent: '' }), /^vmdk descriptor has no extent$/],
    ['createType monolithicFlat', () => desc({ createType: 'monolithicFlat' }), /createType "monolithicflat" is not/],
    ['a second createType that is not sparse', () => desc({ extra: 'createType="vmfs"' }), /createType "vmfs"/],
    ['non-ASCII text', () => desc({ extra: 'ddb.comment = "\xe9"' }), /^vmdk descriptor is not ASCII text$/],
    ['the grain directory in a footer (gdOffset -1)', () => header(56, 2n ** 64n - 1n), /footer/],
    ['the descriptor not at sector 1', () => header(28, 2n), /^vmdk descriptor is not at sector 1$/],
    ['no embedded descriptor', () => header(36, 0n), /no embedded descriptor/],
    ['capacity 0 (qemu then follows the extents)', () => header(12, 0n), /capacity 0/],
    ['version 4', () => edited(sparse(), (b) => b.writeUInt32LE(4, 4)), /^unsupported vmdk version 4$/],
  ];
  for (const [what, data, reason] of cases) {
    it(`refuses ${what}`, async () => assertReject(await stored('vmdk', data()), reason));
  }
  it('a descriptor that runs past the inspected 64 KiB is refused, one cut off by the end of the file too', () => {
    const text = `${vmdkDescriptor()}${'# padding\n'.repeat(7000)}`;
    const long = edited(Buffer.concat([withVmdkDescriptor(sparse(), ''), Buffer.alloc(128 * 1024)]), (b) => {
      b.writeBigUInt64LE(2048n, 36);
      b.write(text, 512, 'latin1');
    });
    assertReject(judge('vmdk', long), /does not end within the first 64 KiB/);
    assertReject(judge('vmdk', long.subarray(0, 8192)), /^vmdk descriptor is truncated/);
  });
  it('a parent is refused from the first KiB of the stream; a valid head waits for its descriptor', () => {
    assertReject(inspectHead('vmdk', img.vmdkParent!.subarray(0, 1024), img.vmdkParent!.length, false), /parent/);
    assert.deepEqual(inspectHead('vmdk', sparse().subarray(0, 700), sparse().length, false), { kind: 'need-more' });
  });
});

describe('raw: nothing qemu would take for another format', () => {
  const text = (s: string) => Buffer.concat([Buffer.from(s, 'latin1'), noise(4096)]);
  const cases: [string, () => Buffer, string][] = [
    ['a descriptor without "# Disk DescriptorFile": comments, then version=1', () => text('# a\n#b\nversion=1\n'), 'vmdk'],
    ['a descriptor after a line of spaces, with CRLF', () => text('   \r\nversion=3\r\nRW 1 FLAT "/etc/passwd" 0\r\n'), 'vmdk'],
    ['a VMDK3 (COWD) extent', () => text('COWD'), 'vmdk'],
    ['a parallels image from qemu-img (WithouFreSpacExt)', () => img.parallels!, 'parallels'],
    ['a parallels "WithoutFreeSpace" header', () => edited(img.parallels!, (b) => b.write('WithoutFreeSpace', 0)), 'parallels'],
    ['a bochs growing image', () => foreignHeader('bochs'), 'bochs'],
    ['a cloop image', () => foreignHeader('cloop'), 'cloop'],
  ];
  for (const [what, data, format] of cases) {
    it(`refuses ${what}`, async () => {
      assertReject(await stored('raw', data()), new RegExp(`^data is ${format} but disk_format is raw$`));
      assertReject(judge('iso', data()), new RegExp(`^data is ${format} but disk_format is iso$`));
    });
  }
  it("qemu's probe sees 2048 bytes: a version line within them is vmdk, one past them plain data", () => {
    assertReject(judge('raw', text(`${'#'.repeat(2030)}\nversion=1\n`)), /^data is vmdk/);
    assert.deepEqual(judge('raw', text(`${'#'.repeat(2040)}\nversion=1\n`)), OK);
  });
  it('a LUKS version 1 header is luks; version 2 is plain data to qemu, so raw', () => {
    assertReject(judge('raw', img.luks!), /^data is luks but disk_format is raw$/);
    assert.deepEqual(judge('raw', edited(img.luks!, (b) => b.writeUInt16BE(2, 6))), OK);
  });
  it('other text is neither vmdk nor refused as raw', () => {
    assertReject(judge('vmdk', Buffer.from('hello\n# Disk DescriptorFile\n')), /^data is not vmdk/);
    assert.deepEqual(judge('raw', Buffer.from('# just a comment\nversion=9\n')), OK);
  });
  it('a head that is only comments so far needs more, a descriptor head waits for its version line', () => {
    assert.deepEqual(inspectHead('raw', Buffer.from('# comment\n# Disk Desc', 'latin1'), 4096, false), { kind: 'need-more' });
    assert.deepEqual(inspectHead('raw', Buffer.from('# comment\n  \nvers'), 4096, false), { kind: 'need-more' });
    assertReject(inspectHead('raw', Buffer.from('# comment\n  \nversion=2\n'), 4096, false), /^data is vmdk/);
  });
});

describe('vhd and vhdx with a parent', () => {
  it('a differencing vhd is refused from the footer copy at its head', () => {
    const diff = differencingVhd(img.vhdDynamic!);
    assertReject(inspectHead('vhd', diff.subarray(0, 512), diff.length, false), /^vhd is a differencing disk: it has a parent$/);
  });
  it('a footer at the end saying differencing is refused too, for a fixed and a dynamic vhd', async () => {
    const endSays4 = (data: Buffer) => edited(data, (b) => b.writeUInt32BE(4, b.length - 512 + 60));
    assertReject(inspectTail('vhd', endSays4(img.vhdFixed!).subarray(-512)), /differencing/);
    assertReject(await stored('vhd', endSays4(img.vhdDynamic!)), /^vhd is a differencing disk/);
  });
  const parents: ['flag' | 'locator' | 'both', RegExp][] = [['flag', /HasParent/], ['locator', /parent locator/], ['both', /has a parent/]];
  for (const [how, reason] of parents) {
    it(`a vhdx with a parent (${how}) passes the head but is refused as a stored file`, async () => {
      const child = vhdxWithParent(img.vhdx!, how);
      assert.deepEqual(judge('vhdx', child), OK, 'its metadata lies past the head');
      assertReject(await stored('vhdx', child), reason);
    });
  }
  it('a vhdx without its region table or metadata signature is refused', async () => {
    assertReject(await stored('vhdx', edited(img.vhdx!, (b) => b.fill(0, 192 * 1024, 192 * 1024 + 4))), /no region table/);
    assertReject(await stored('vhdx', edited(img.vhdx!, (b) => b.fill(0, 3 << 20, (3 << 20) + 8))), /no metadata signature/);
  });
});

// A v3 header's extensions start at header_length and run until an end marker, so a
// 100-byte v3 head cannot rule out a data-file extension yet; a v2 head can.
describe('partial heads', () => {
  const at = (name: string, n: number, complete = false): Verdict =>
    inspectHead('qcow2', img[name]!.subarray(0, n), img[name]!.length, complete);
  it('qcow2 v3 needs more at 100 bytes and decides exactly when its end-of-extensions marker arrives', () => {
    assert.deepEqual(at('qcow2v3', 100), { kind: 'need-more' });
    let first = -1;
    for (let n = 0; n <= 1024 && first < 0; n++) if (at('qcow2v3', n).kind !== 'need-more') first = n;
    // header_length 112, feature-name table (8 + 384 bytes), then the 8-byte end marker.
    assert.equal(first, 512);
    assert.deepEqual(at('qcow2v3', 512), OK);
  });
  it('100 bytes: qcow2 v2 is ok, a backing file or a data file is refused, a file ending there is truncated', () => {
    assert.deepEqual(at('qcow2v2', 100), OK);
    assertReject(at('backing', 100), /backing file/);
    assertReject(at('dataFile', 100), /external data file/);
    assertReject(at('qcow2v3', 100, true), /truncated/);
  });
  it('a few bytes: need-more until each magic can be told apart', () => {
    const zeros = Buffer.alloc(100);
    // The vdi magic sits at 64: one differing byte there is enough to rule it out.
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 64), 1 << 20, false), { kind: 'need-more' });
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 65), 1 << 20, false), OK);
    zeros.writeUInt32LE(0xbeda107f, 64);
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 67), 1 << 20, false), { kind: 'need-more' });
    assertReject(inspectHead('raw', zeros.subarray(0, 68), 1 << 20, false), /^data is vdi but disk_format is raw$/);
    assert.deepEqual(inspectHead('raw', zeros.subarray(0, 10), 10, false), OK, 'declared size says nothing more comes');
    assert.deepEqual(inspectHead('qcow2', Buffer.from('QF', 'latin1'), 1 << 20, false), { kind: 'need-more' });
    assertReject(inspectHead('qcow2', Buffer.from('QX', 'latin1'), 1 << 20, false), /^data is not qcow2/);
    assert.deepEqual(inspectHead('vhd', Buffer.from('conec', 'latin1'), 1 << 20, false), { kind: 'need-more' });
  });
  it('iso waits for byte 32774, or refuses if the file ends first', () => {
    const iso = isoLike();
    assert.deepEqual(inspectHead('iso', iso.subarray(0, 32773), iso.length, false), { kind: 'need-more' });
    assert.deepEqual(inspectHead('iso', iso.subarray(0, 32774), iso.length, false), OK);
    assertReject(inspectHead('iso', iso.subarray(0, 32773), 32773, true), /^data is not iso/);
  });
});

describe('tiny complete files', () => {
  for (const format of DECLARABLE) {
    it(`empty file is refused as ${format}`, () => assertReject(judge(format, Buffer.alloc(0)), new RegExp(`data is not ${format}`)));
  }
  it('empty file and a 3-byte file are fine as raw', () => {
    assert.deepEqual(judge('raw', Buffer.alloc(0)), OK);
    assert.deepEqual(judge('raw', Buffer.from('QFI', 'latin1')), OK);
  });
  it('a magic cut short is refused as that format', () => {
    assertReject(judge('qcow2', Buffer.from('QFI', 'latin1')), /^data is not qcow2 \(no QFI\\xfb magic\)$/);
    assertReject(judge('vhd', Buffer.from('conecti', 'latin1')), /^data is not vhd/);
  });
  it('a small complete fixed vhd is judged at the head from its own footer', () => {
    const data = Buffer.concat([Buffer.alloc(1024), img.vhdFixed!.subarray(-512)]);
    assert.deepEqual(inspectHead('vhd', data, data.length, true), OK);
    assertReject(inspectHead('vhd', Buffer.alloc(1536), 1536, true), /^data is not vhd/);
  });
});

describe('formats the gateway cannot inspect', () => {
  for (const format of ['zvhd', 'zvhd2', 'qcow', 'ploop', 'ami', 'aki', 'ari', 'something-new']) {
    it(`${format} is always ok`, async () => {
      for (const data of [Buffer.alloc(0), noise(4096), Buffer.from('QFI\xfb', 'latin1')]) {
        assert.deepEqual(inspectHead(format, data, 1 << 20, false), OK);
        assert.deepEqual(inspectHead(format, data, data.length, true), OK);
        assert.equal(needsTail(format, data), false);
        assert.deepEqual(inspectTail(format, data), OK);
        assert.deepEqual(await stored(format, data), OK);
      }
    });
  }
});
