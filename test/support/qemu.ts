// Real disk images from Debian's qemu-img (package qemu-utils), and the few variants
// qemu-img cannot make, built from them byte by byte.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function qemuImg(...args: string[]): void {
  try {
    execFileSync('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('qemu-img not found: install qemu-utils (apt-get install qemu-utils); these tests need real images');
    }
    throw err;
  }
}

// name -> qemu-img create args before the file name, and the disk_format the image passes as.
export const VALID_IMAGES = {
  qcow2v3: { args: ['-f', 'qcow2'], format: 'qcow2' },
  qcow2v2: { args: ['-f', 'qcow2', '-o', 'compat=0.10'], format: 'qcow2' },
  qcow2zstd: { args: ['-f', 'qcow2', '-o', 'compression_type=zstd'], format: 'qcow2' },
  vmdkSparse: { args: ['-f', 'vmdk'], format: 'vmdk' },
  vmdkStream: { args: ['-f', 'vmdk', '-o', 'subformat=streamOptimized'], format: 'vmdk' },
  vhdx: { args: ['-f', 'vhdx'], format: 'vhdx' },
  vdi: { args: ['-f', 'vdi'], format: 'vdi' },
  qed: { args: ['-f', 'qed'], format: 'qed' },
  vhdDynamic: { args: ['-f', 'vpc'], format: 'vhd' },
  vhdFixed: { args: ['-f', 'vpc', '-o', 'subformat=fixed'], format: 'vhd' },
  raw: { args: ['-f', 'raw'], format: 'raw' },
} as const;

// Also qemu-img's own, refused as their own format (or Glance has no disk_format for them).
const OTHER_IMAGES = {
  vmdkFlat: ['-f', 'vmdk', '-o', 'subformat=monolithicFlat'],
  qcow1: ['-f', 'qcow'],
  extendedL2: ['-f', 'qcow2', '-o', 'extended_l2=on'],
  parallels: ['-f', 'parallels'],
};

/**
 * A LUKS version 1 header as qemu-img writes it, made by hand: qemu-img times its key derivation
 * on the CPU and refuses to create one when a loaded machine will not give it a steady reading.
 */
function luks1(): Buffer {
  const b = Buffer.alloc(1 << 20);
  b.write('LUKS\xba\xbe', 0, 'latin1');
  b.writeUInt16BE(1, 6);
  b.write('aes', 8, 'latin1');
  b.write('xts-plain64', 40, 'latin1');
  b.write('sha256', 72, 'latin1');
  b.writeUInt32BE(4096, 104); // payload offset, in sectors
  b.writeUInt32BE(64, 108); // key bytes
  return b;
}

/**
 * Every image above (1 MiB virtual size) in `dir`, plus ones that refer to other files
 * (backing, dataFile, vmdkParent, vmdkParentRel, qedBacking) and a streamOptimized vmdk
 * converted from 3 MiB of data (vmdkStreamData); by name.
 */
export function makeImages(dir: string): Record<string, Buffer> {
  const img: Record<string, Buffer> = {};
  const at = (name: string) => join(dir, name);
  const make = (name: string, ...args: string[]) => {
    qemuImg(...args);
    img[name] = readFileSync(at(name));
  };
  for (const [name, { args }] of Object.entries(VALID_IMAGES)) make(name, 'create', ...args, at(name), '1M');
  for (const [name, args] of Object.entries(OTHER_IMAGES)) make(name, 'create', ...args, at(name), '1M');
  make('dataFile', 'create', '-f', 'qcow2', '-o', `data_file=${at('dataFile.raw')}`, at('dataFile'), '1M');
  make('backing', 'create', '-f', 'qcow2', '-b', at('qcow2v3'), '-F', 'qcow2', at('backing'));
  make('vmdkParent', 'create', '-f', 'vmdk', '-b', at('vmdkSparse'), '-F', 'vmdk', at('vmdkParent'));
  // A parent named without a '/'.
  make('vmdkParentRel', 'create', '-f', 'vmdk', '-b', 'vmdkSparse', '-F', 'vmdk', at('vmdkParentRel'));
  make('qedBacking', 'create', '-f', 'qed', '-b', at('qed'), '-F', 'qed', at('qedBacking'));
  img.luks = luks1();
  writeFileSync(at('noise.raw'), noise(3 << 20));
  make('vmdkStreamData', 'convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', at('noise.raw'), at('vmdkStreamData'));
  return img;
}

const SECTOR = 512;

/** A copy of `data` changed by `edit`. */
export function edited(data: Buffer, edit: (b: Buffer) => unknown): Buffer {
  const copy = Buffer.from(data);
  edit(copy);
  return copy;
}

/** A sparse VMDK (KDMV) whose embedded descriptor (20 sectors at sector 1) reads `text` instead. */
export function withVmdkDescriptor(sparse: Buffer, text: string): Buffer {
  const out = Buffer.from(sparse);
  out.fill(0, SECTOR, SECTOR * 21);
  out.write(text, SECTOR, 'latin1');
  return out;
}

/** The descriptor qemu-img writes for a monolithicSparse image, with `extra` header lines and `extent`. */
export function vmdkDescriptor({ extra = '', extent = 'RW 2048 SPARSE "disk.vmdk"', createType = 'monolithicSparse' } = {}): string {
  return [
    '# Disk DescriptorFile',
    'version=1',
    'CID=a6813841',
    'parentCID=ffffffff',
    `createType="${createType}"`,
    ...(extra ? [extra] : []),
    '',
    '# Extent description',
    extent,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    'ddb.virtualHWVersion = "4"',
    'ddb.adapterType = "ide"',
    '',
  ].join('\n');
}

/** A dynamic VHD turned differencing (disk type 4) in both footer copies, checksums kept right. */
export function differencingVhd(dynamic: Buffer): Buffer {
  const out = Buffer.from(dynamic);
  for (const at of [0, out.length - SECTOR]) {
    const footer = out.subarray(at, at + SECTOR);
    footer.writeUInt32BE(4, 60);
    footer.writeUInt32BE(0, 64);
    let sum = 0;
    for (const b of footer) sum += b;
    footer.writeUInt32BE(~sum >>> 0, 64);
  }
  return out;
}

// As stored on disk: the first three GUID groups little-endian.
const METADATA_REGION = Buffer.from('06a27c8b90479a4bb8fe575f050f886e', 'hex');
const FILE_PARAMETERS = Buffer.from('3767a1ca36fa434db3b633f0aa44e76b', 'hex');
const PARENT_LOCATOR = Buffer.from('2d5fd3a80bb34d45abf7d3d84834ab0c', 'hex');

/** Where a VHDX's metadata region starts, by its primary region table (192 KiB). */
export function vhdxMetadataOffset(vhdx: Buffer): number {
  const table = 192 * 1024;
  const count = vhdx.readUInt32LE(table + 8);
  for (let e = table + 16; e < table + 16 + count * 32; e += 32) {
    if (vhdx.subarray(e, e + 16).equals(METADATA_REGION)) return Number(vhdx.readBigUInt64LE(e + 16));
  }
  throw new Error('no metadata region');
}

/**
 * A VHDX made differencing, as qemu-img cannot: the HasParent flag in its file parameters,
 * a parent locator metadata item, or both (what a real differencing disk has).
 */
export function vhdxWithParent(vhdx: Buffer, how: 'flag' | 'locator' | 'both' = 'both'): Buffer {
  const out = Buffer.from(vhdx);
  const meta = vhdxMetadataOffset(out);
  const count = out.readUInt16LE(meta + 10);
  let last = 0;
  for (let e = meta + 32; e < meta + 32 + count * 32; e += 32) {
    const offset = out.readUInt32LE(e + 16);
    last = Math.max(last, offset + out.readUInt32LE(e + 20));
    if (how !== 'locator' && out.subarray(e, e + 16).equals(FILE_PARAMETERS)) {
      out.writeUInt32LE(out.readUInt32LE(meta + offset + 4) | 2, meta + offset + 4);
    }
  }
  if (how !== 'flag') {
    const e = meta + 32 + count * 32;
    PARENT_LOCATOR.copy(out, e);
    out.writeUInt32LE(last, e + 16); // the item goes after the others
    out.writeUInt32LE(64, e + 20);
    out.writeUInt32LE(4, e + 24); // IsRequired
    out.writeUInt16LE(count + 1, meta + 10);
  }
  return out;
}

/** Deterministic noise so a failure reproduces. */
export function noise(length: number, seed = 0x9e3779b9): Buffer {
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

export function isoLike(): Buffer {
  const data = noise(64 * 1024);
  data.fill(0, 0, 32768); // ISO9660 system area
  data[32768] = 1; // primary volume descriptor type
  data.write('CD001', 32769, 'latin1');
  return data;
}

/** Headers of formats qemu reads but cannot write (bochs, cloop), in front of noise. */
export function foreignHeader(kind: 'bochs' | 'cloop', length = 4096): Buffer {
  const data = noise(length);
  if (kind === 'bochs') {
    data.fill(0, 0, 512);
    data.write('Bochs Virtual HD Image', 0, 'latin1');
    data.write('Redolog', 32, 'latin1');
    data.write('Growing', 48, 'latin1');
    data.writeUInt32LE(0x00020000, 64);
  } else {
    data.write('#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n', 0, 'latin1');
  }
  return data;
}
