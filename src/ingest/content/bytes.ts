// Byte helpers on plain Uint8Array: these checks also run in the browser page, which has no Buffer.
// A Node Buffer is a Uint8Array, so the gateway passes its buffers as they are.

/** One byte per character (ISO-8859-1), as magic strings are written. */
export const latin1 = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** Bytes as ISO-8859-1 text: one character per byte, whatever its value. */
export function latin1Text(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return text;
}

export const fromHex = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Reads past the end throw a RangeError, as Buffer's do.
const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
export const u16le = (b: Uint8Array, at: number): number => view(b).getUint16(at, true);
export const u32le = (b: Uint8Array, at: number): number => view(b).getUint32(at, true);
export const u32be = (b: Uint8Array, at: number): number => view(b).getUint32(at, false);
export const u64le = (b: Uint8Array, at: number): bigint => view(b).getBigUint64(at, true);
export const u64be = (b: Uint8Array, at: number): bigint => view(b).getBigUint64(at, false);

export function u32leBytes(n: number): Uint8Array {
  const b = new Uint8Array(4);
  view(b).setUint32(0, n, true);
  return b;
}
