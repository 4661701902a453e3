/** 'short': the bytes needed have not arrived yet, but will. */
export type Match = 'yes' | 'no' | 'short';

/**
 * The start of a file plus how far it can ever reach, so a check can tell
 * "wait for more bytes" from "those bytes will never exist".
 */
export class HeadView {
  constructor(
    readonly buf: Buffer,
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

  magicAt(offset: number, magic: Buffer): Match {
    const have = Math.max(0, Math.min(this.buf.length - offset, magic.length));
    // A mismatch in the bytes we already hold decides it without waiting.
    if (!this.buf.subarray(offset, offset + have).equals(magic.subarray(0, have))) return 'no';
    if (have === magic.length) return 'yes';
    return offset + magic.length <= this.limit ? 'short' : 'no';
  }
}
