import fsp from 'node:fs/promises';
import { HEAD_BYTES, inspectHead, inspectTail, needsTail, TAIL_BYTES } from '../ingest/content/inspect.js';

/** The formats the gateway can recognise by their bytes; vhd before iso, as the gateway scans. */
const KNOWN = ['qcow2', 'vmdk', 'vhdx', 'vdi', 'qed', 'vhd', 'iso'] as const;

/**
 * Guess `disk_format` with the gateway's own content check, so the guess is exactly what
 * the gateway will accept. undefined: the bytes fit nothing, not even raw (say, a qcow2
 * with a backing file), and the caller should ask for `--disk-format`.
 */
export async function detectDiskFormat(file: string): Promise<{ format: string } | { format: undefined; reason: string }> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = await readAt(fh, 0, Math.min(HEAD_BYTES, size));
    const complete = head.length >= size;
    const tail = () => readAt(fh, Math.max(0, size - TAIL_BYTES), Math.min(TAIL_BYTES, size));
    const reasons: string[] = [];
    for (const format of KNOWN) {
      const verdict = inspectHead(format, head, size, complete);
      if (verdict.kind === 'reject') reasons.push(verdict.reason);
      if (verdict.kind !== 'ok') continue;
      // A head without any cookie passes for vhd until the end: a fixed VHD has only its footer.
      if (needsTail(format, head) && inspectTail(format, await tail()).kind !== 'ok') continue;
      return { format };
    }
    const raw = inspectHead('raw', head, size, complete);
    if (raw.kind !== 'reject') return { format: 'raw' };
    // "data is X but ..." only says the magic differs; another reason is the real flaw (a backing file).
    return { format: undefined, reason: reasons.find((r) => !r.startsWith('data ')) ?? raw.reason };
  } finally {
    await fh.close();
  }
}

async function readAt(fh: fsp.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}
