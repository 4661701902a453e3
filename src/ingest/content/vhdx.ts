import { ok, reject, type Verdict } from './verdict.js';
import { equal, fromHex, latin1, u16le, u32le, u64le } from './bytes.js';

export type ReadAt = (start: number, length: number) => Promise<Uint8Array>;

/** GUIDs as stored: the first three groups little-endian. */
function guid(text: string): Uint8Array {
  const b = fromHex(text.replace(/-/g, ''));
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

const METADATA_REGION = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const FILE_PARAMETERS = guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
const PARENT_LOCATOR = guid('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');
const REGI = latin1('regi');
const METADATA = latin1('metadata');
/** The primary region table, then its copy; both lie past the inspected head. */
const REGION_TABLES = [192 * 1024, 256 * 1024];
const TABLE_BYTES = 64 * 1024;
const MAX_ENTRIES = 2047;
const ENTRY = 32;
const HAS_PARENT = 1 << 1;

/**
 * A differencing VHDX names its parent in a parent locator metadata item and sets
 * HasParent in its file parameters; both sit in the metadata region, wherever the
 * region tables say. Needs the stored file, so it runs once the upload is complete.
 */
export async function checkVhdx(size: number, read: ReadAt): Promise<Verdict> {
  const regions = new Set<number>();
  for (const [n, at] of REGION_TABLES.entries()) {
    const table = at < size ? await read(at, Math.min(TABLE_BYTES, size - at)) : new Uint8Array(0);
    if (!equal(table.subarray(0, 4), REGI)) {
      if (n === 0) return reject('vhdx has no region table (no regi signature at 192 KiB)');
      continue; // The copy is only a fallback; the primary must be there.
    }
    if (table.length < 16) return reject('vhdx region table is truncated');
    const count = u32le(table, 8);
    if (count > MAX_ENTRIES) return reject(`vhdx region table has ${count} entries (at most ${MAX_ENTRIES})`);
    if (16 + count * ENTRY > table.length) return reject('vhdx region table is truncated');
    for (let e = 16; e < 16 + count * ENTRY; e += ENTRY) {
      if (equal(table.subarray(e, e + 16), METADATA_REGION)) regions.add(Number(u64le(table, e + 16)));
    }
  }
  if (!regions.size) return reject('vhdx has no metadata region');
  for (const at of regions) {
    const verdict = await checkMetadata(at, size, read);
    if (verdict.kind !== 'ok') return verdict;
  }
  return ok();
}

async function checkMetadata(at: number, size: number, read: ReadAt): Promise<Verdict> {
  if (at + ENTRY > size) return reject('vhdx metadata region lies outside the file');
  const table = await read(at, Math.min(TABLE_BYTES, size - at));
  if (!equal(table.subarray(0, 8), METADATA)) return reject('vhdx metadata region has no metadata signature');
  if (table.length < ENTRY) return reject('vhdx metadata table is truncated');
  const count = u16le(table, 10);
  if (count > MAX_ENTRIES) return reject(`vhdx metadata table has ${count} entries (at most ${MAX_ENTRIES})`);
  if (ENTRY + count * ENTRY > table.length) return reject('vhdx metadata table is truncated');
  let params = -1;
  for (let e = ENTRY; e < ENTRY + count * ENTRY; e += ENTRY) {
    const id = table.subarray(e, e + 16);
    if (equal(id, PARENT_LOCATOR)) return reject('vhdx image has a parent (parent locator)');
    if (equal(id, FILE_PARAMETERS)) params = u32le(table, e + 16);
  }
  if (params < 0) return reject('vhdx metadata has no file parameters');
  const item = await read(at + params, 8);
  if (item.length < 8) return reject('vhdx file parameters lie outside the file');
  if (u32le(item, 4) & HAS_PARENT) return reject('vhdx image has a parent (HasParent is set in its file parameters)');
  return ok();
}
