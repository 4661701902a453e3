import type { HeadView, Match } from './head-view.js';

const KDMV = Buffer.from('KDMV', 'latin1');
const DESCRIPTOR = Buffer.from('# Disk DescriptorFile', 'latin1');
const HASH = 0x23;
const NEWLINE = 0x0a;

/** Sparse extent (KDMV) or a text descriptor. */
export function matchVmdk(v: HeadView): Match {
  const sparse = v.magicAt(0, KDMV);
  return sparse === 'no' ? matchDescriptor(v) : sparse;
}

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0d || c === NEWLINE;

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
