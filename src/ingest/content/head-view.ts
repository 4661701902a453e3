import { equal } from './bytes.js';
/** 'short': the bytes needed have not arrived yet, but will. */
export type Match = 'yes' | 'no' | 'short';

/** How much of an upload is judged before any of it is stored. */
export const HEAD_BYTES = 64 * 1024;

/** qemu guesses a format from the first 2048 bytes, zero-padded when the file is shorter. */
export const PROBE_BYTES = 2048;

/**
 * The start of a file plus how far it can ever reach, so a check can tell
 * "wait for more bytes" from "those bytes will never exist".
 */
export class HeadView {
  constructor(
    readonly buf: Uint8Array,
    /** Bytes [0, limit) are (or will be) available to the head check. */
    readonly limit: number,
    /** buf is the whole file. */
    readonly whole: boolean,
  ) {}

  /** true: bytes [0, end) are here; 'short': still coming; false: never. */
  has(end: number): boolean | 'short' {
    if (end <= this.buf.length) return true;
    return end <= this.limit ? 'short' : false;
  }

  /**
   * A byte of qemu's probe buffer (pos < PROBE_BYTES, which the head always covers):
   * past the end of the file it reads as 0; 'short' while still coming.
   */
  probeByte(pos: number): number | 'short' {
    if (pos < this.buf.length) return this.buf[pos]!;
    return pos < this.limit ? 'short' : 0;
  }

  /** magicAt as qemu's probes see it: a short file is padded with zeros up to PROBE_BYTES. */
  probeAt(offset: number, magic: Uint8Array): Match {
    let short = false;
    for (let i = 0; i < magic.length; i++) {
      const b = this.probeByte(offset + i);
      if (b === 'short') short = true;
      else if (b !== magic[i]) return 'no';
    }
    return short ? 'short' : 'yes';
  }

  magicAt(offset: number, magic: Uint8Array): Match {
    const have = Math.max(0, Math.min(this.buf.length - offset, magic.length));
    // A mismatch in the bytes we already hold decides it without waiting.
    if (!equal(this.buf.subarray(offset, offset + have), magic.subarray(0, have))) return 'no';
    if (have === magic.length) return 'yes';
    return offset + magic.length <= this.limit ? 'short' : 'no';
  }
}
