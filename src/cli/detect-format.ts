import fsp from 'node:fs/promises';
import { detectFormat, HEAD_BYTES, TAIL_BYTES } from '../ingest/content/detect.js';
import { inspectHead, inspectTail, needsTail } from '../ingest/content/inspect.js';

/** The disk_formats a guess may name: formats Glance takes whose content the gateway can check. */
const DECLARABLE = ['qcow2', 'vmdk', 'vhdx', 'vdi', 'qed', 'vhd', 'iso', 'raw'];

/**
 * Guess `disk_format` with the gateway's own content inspection (the browser page uses the same
 * detectFormat), and keep it only if the gateway's check accepts it. undefined: the bytes fit no
 * format the gateway takes (say, a qcow2 with a backing file), and the caller should ask for `--disk-format`.
 */
export async function detectDiskFormat(file: string): Promise<{ format: string } | { format: undefined; reason: string }> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = await readAt(fh, 0, Math.min(HEAD_BYTES, size));
    const tail = await readAt(fh, Math.max(0, size - TAIL_BYTES), Math.min(TAIL_BYTES, size));
    const complete = head.length >= size;
    const format = detectFormat(head, tail);
    // A format Glance does not take is explained the way the gateway would refuse it as raw.
    const verdict = inspectHead(DECLARABLE.includes(format) ? format : 'raw', head, size, complete);
    if (verdict.kind === 'reject') return { format: undefined, reason: verdict.reason };
    if (verdict.kind === 'need-more') return { format: undefined, reason: `the first ${HEAD_BYTES} bytes do not settle ${format}` };
    if (needsTail(format, head)) {
      const footer = inspectTail(format, tail);
      if (footer.kind === 'reject') return { format: undefined, reason: footer.reason };
    }
    return { format };
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
