import { ok, reject, type Verdict } from './verdict.js';
import { latin1Text } from './bytes.js';

const ACCESS = new Set(['rw', 'rdonly', 'noaccess']);
/** The only kinds whose data can all be inside the one file. */
const SELF_CONTAINED = new Set(['monolithicsparse', 'streamoptimized']);
const CREATE_TYPE = 'createtype="';
const NO_PARENT = 'ffffffff';

/**
 * The text descriptor embedded in a sparse VMDK, judged line by line as Glance does:
 * every line must be understood, since qemu and other readers act on what they find.
 */
export function checkDescriptor(raw: Uint8Array): Verdict {
  if (raw.some((b) => b > 0x7f)) return reject('vmdk descriptor is not ASCII text');
  // Readers treat keys and values without regard to case.
  const text = latin1Text(raw).toLowerCase();
  const fields: [string, string][] = [];
  let extents = 0;
  for (const [i, line] of text.split('\n').map((l) => l.trim()).entries()) {
    if (!line || line.startsWith('#') || line.startsWith('ddb')) continue;
    const eq = line.indexOf('=');
    if (eq >= 0 && !line.slice(0, eq).includes(' ')) {
      fields.push([line.slice(0, eq), unquote(line.slice(eq + 1))]);
    } else if (ACCESS.has(line.split(' ')[0]!)) {
      if (line.includes('/')) return reject('vmdk extent names a file path outside the image');
      extents++;
    } else {
      return reject(`vmdk descriptor line ${i + 1} is not a comment, header field, ddb entry or extent`);
    }
  }
  if (!extents) return reject('vmdk descriptor has no extent');

  // qemu takes the first createType it finds anywhere, comments included.
  const createType = firstCreateType(text);
  const declared = fields.filter(([k]) => k === 'createtype').map(([, v]) => v);
  const bad = [createType, ...declared].find((t) => !SELF_CONTAINED.has(t));
  if (bad !== undefined) return reject(`vmdk createType ${shown(bad)} is not monolithicSparse or streamOptimized`);

  // qemu looks for the parent's name anywhere in the descriptor, comments included.
  if (text.includes('parentfilenamehint')) return reject('vmdk image has a parent (parentFileNameHint)');
  if (fields.some(([k, v]) => k === 'parentcid' && v !== NO_PARENT)) {
    return reject(`vmdk image has a parent (parentCID is not ${NO_PARENT})`);
  }
  return ok();
}

function firstCreateType(text: string): string {
  const at = text.indexOf(CREATE_TYPE);
  if (at < 0) return '';
  const start = at + CREATE_TYPE.length;
  const end = text.indexOf('"', start);
  return end < 0 || end - start >= 64 ? '' : text.slice(start, end);
}

const unquote = (v: string) => v.trim().replace(/^"(.*)"$/, '$1');

/** Only names that are plainly a word are echoed back. */
const shown = (t: string) => (/^[a-z0-9_]{1,63}$/.test(t) ? `"${t}"` : t ? '(unreadable)' : '(missing)');
