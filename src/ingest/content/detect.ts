// Pure, like every module here: the browser page imports it as it is (see src/http/ui-routes.ts).
import { equal } from './bytes.js';
import { HeadView } from './head-view.js';
import { ISO_MAGIC, scan } from './magic.js';
import { qcowName } from './qcow2.js';
import { CONECTIX, FOOTER_BYTES } from './vhd.js';

export { HEAD_BYTES } from './head-view.js';
export const TAIL_BYTES = FOOTER_BYTES;

/**
 * The format of a file from its first HEAD_BYTES (`head`, all of a shorter file) and its last
 * TAIL_BYTES (`tail`): the one qemu would probe from the head (qcow2, vmdk, vhdx, vdi, qed, vhd, or
 * a format Glance does not take, such as luks); else a fixed VHD by its footer; else iso; else raw.
 * It names what the bytes are, not whether the gateway accepts them (inspectHead says that).
 */
export function detectFormat(head: Uint8Array, tail?: Uint8Array): string {
  const view = new HeadView(head, head.length, true);
  const probed = scan(view).found[0];
  if (probed) return probed === 'qcow2' ? qcowName(view) : probed;
  const footer = tail?.subarray(-FOOTER_BYTES);
  if (footer?.length === FOOTER_BYTES && equal(footer.subarray(0, CONECTIX.length), CONECTIX)) return 'vhd';
  return view.magicAt(ISO_MAGIC.offset, ISO_MAGIC.bytes) === 'yes' ? 'iso' : 'raw';
}
