import { HEAD_BYTES, PROBE_BYTES, type HeadView, type Match } from './head-view.js';
import { anyOf } from './probes.js';
import { needMore, reject, type Verdict } from './verdict.js';
import { checkDescriptor } from './vmdk-descriptor.js';
import { latin1, u32le, u64le } from './bytes.js';

const KDMV = latin1('KDMV');
const COWD = latin1('COWD'); // VMDK3 sparse extent
const DESCRIPTOR = latin1('# Disk DescriptorFile');
const HASH = 0x23;
const SPACE = 0x20;
const CR = 0x0d;
const NEWLINE = 0x0a;

/** Sparse extent (KDMV, COWD) or a text descriptor, as qemu's probe or a reader would take it. */
export function matchVmdk(v: HeadView): Match {
  return anyOf(v.magicAt(0, KDMV), v.magicAt(0, COWD), matchQemuDescriptor(v), matchDescriptor(v));
}

const isSpace = (c: number | undefined) => c === SPACE || c === 0x09 || c === CR || c === NEWLINE;

/** "# Disk DescriptorFile", possibly after blank and comment lines. */
function matchDescriptor(v: HeadView): Match {
  const b = v.buf;
  const ranOut = (): Match => (v.has(b.length + 1) === 'short' ? 'short' : 'no');
  let i = 0;
  for (;;) {
    while (i < b.length && isSpace(b[i])) i++;
    if (i >= b.length) return ranOut();
    const m = v.magicAt(i, DESCRIPTOR);
    if (m !== 'no') return m;
    if (b[i] !== HASH) return 'no';
    const nl = b.indexOf(NEWLINE, i);
    if (nl < 0) return ranOut();
    i = nl + 1;
  }
}

/**
 * qemu's own test, within its zero-padded probe buffer: '#' comment lines and lines of
 * spaces, then "version=1|2|3" ending in "\n" or "\r\n". No "# Disk DescriptorFile" needed.
 */
function matchQemuDescriptor(v: HeadView): Match {
  let p = 0;
  const at = (i: number) => (i < PROBE_BYTES ? v.probeByte(i) : undefined);
  while (p < PROBE_BYTES) {
    const c = at(p);
    if (c === 'short') return 'short';
    if (c === HASH) {
      let d;
      while ((d = at(p)) !== undefined && d !== NEWLINE) {
        if (d === 'short') return 'short';
        p++;
      }
      p++;
    } else if (c === SPACE) {
      let d;
      while ((d = at(p)) === SPACE) p++;
      if (d === CR) d = at(++p);
      if (d === 'short') return 'short';
      if (d !== NEWLINE) return 'no';
      p++;
    } else {
      return anyOf(versionAt(v, p, '\n'), versionAt(v, p, '\r\n'));
    }
  }
  return 'no';
}

function versionAt(v: HeadView, p: number, eol: string): Match {
  if (p + 'version=X'.length + eol.length > PROBE_BYTES) return 'no';
  return anyOf(...['1', '2', '3'].map((n) => v.probeAt(p, latin1(`version=${n}${eol}`))));
}

// Sparse header fields (little-endian), after the magic.
const VERSION = 4;
const CAPACITY = 12;
const DESC_OFFSET = 28;
const DESC_SIZE = 36;
const GD_OFFSET = 56;
const HEADER_BYTES = 64;
const SECTOR = 512;
const GD_AT_END = 0xffffffffffffffffn;
/** Glance reads the descriptor's declared sectors, up to this; qemu reads 20 sectors for the parent. */
const DESC_MAX_BYTES = (1 << 20) - 1;
const QEMU_DESC_BYTES = 20 * SECTOR;

/** Declared vmdk: only a KDMV sparse file carrying its own descriptor, which names nothing outside. */
export function checkVmdk(v: HeadView): Verdict {
  if (v.magicAt(0, KDMV) === 'yes') return checkSparse(v);
  if (v.magicAt(0, COWD) === 'yes') {
    return reject('vmdk is a VMDK3 (COWD) sparse extent; only monolithicSparse or streamOptimized (KDMV) images are accepted');
  }
  return reject('vmdk is a text descriptor only: its data lives in other files, so it cannot be uploaded on its own');
}

function checkSparse(v: HeadView): Verdict {
  const b = v.buf;
  const h = v.has(HEADER_BYTES);
  if (h !== true) return h === 'short' ? needMore() : reject('vmdk header is truncated');
  const version = u32le(b, VERSION);
  if (version < 1 || version > 3) return reject(`unsupported vmdk version ${version}`);
  // qemu opens a zero-capacity header's descriptor as a descriptor file, following its extents.
  if (u64le(b, CAPACITY) === 0n) return reject('vmdk header has capacity 0, so its extents would be opened as other files');
  if (u64le(b, GD_OFFSET) === GD_AT_END) {
    return reject('vmdk keeps its grain directory in a footer at the end of the file (gdOffset -1), which is not accepted');
  }
  if (u64le(b, DESC_OFFSET) !== 1n) return reject('vmdk descriptor is not at sector 1');
  const descSectors = u64le(b, DESC_SIZE);
  if (descSectors === 0n) return reject('vmdk header has no embedded descriptor');

  const declared = Math.min(Number(descSectors) * SECTOR, DESC_MAX_BYTES);
  const end = SECTOR + Math.max(declared, QEMU_DESC_BYTES);
  // The descriptor text ends at its first NUL (the padding), or at the end of the region.
  const nul = b.subarray(SECTOR, end).indexOf(0);
  if (nul >= 0) return checkDescriptor(b.subarray(SECTOR, SECTOR + nul));
  if (b.length >= end) return checkDescriptor(b.subarray(SECTOR, end));
  if (b.length < v.limit) return needMore();
  return v.whole || v.limit < HEAD_BYTES
    ? reject('vmdk descriptor is truncated (the file ends inside it)')
    : reject(`vmdk descriptor does not end within the first ${HEAD_BYTES / 1024} KiB, which is all that is inspected`);
}
