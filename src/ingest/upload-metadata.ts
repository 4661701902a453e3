import { InvalidMetadataError } from '../errors.js';
import type { NewImage } from '../glance/image.js';

/** The image an upload is for: an existing one, or one the gateway creates. */
export type ImageRequest = { kind: 'existing'; imageId: string } | { kind: 'create'; image: NewImage };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DISK_FORMAT = /^[a-z0-9][a-z0-9_.-]{0,31}$/i;

/** Read the contract's keys from tus metadata; keys tus-js-client and Uppy add (filename, filetype...) are ignored. */
export function parseImageRequest(metadata: Record<string, string | null> | undefined): ImageRequest {
  const m = metadata ?? {};
  const value = (key: string): string | undefined => {
    const v = m[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (v.includes('\uFFFD')) throw new InvalidMetadataError(`metadata ${key} is not valid UTF-8`);
    return v;
  };

  const imageId = value('image_id');
  const name = value('name');
  if ((imageId === undefined) === (name === undefined)) {
    throw new InvalidMetadataError('metadata needs exactly one of image_id or name');
  }
  if (imageId !== undefined) {
    if (!UUID.test(imageId)) throw new InvalidMetadataError('metadata image_id is not a UUID');
    return { kind: 'existing', imageId: imageId.toLowerCase() };
  }

  const diskFormat = value('disk_format');
  if (diskFormat === undefined) throw new InvalidMetadataError('metadata name needs disk_format');
  if (!DISK_FORMAT.test(diskFormat)) throw new InvalidMetadataError('metadata disk_format is malformed');
  const image: NewImage = {
    name: name!,
    disk_format: diskFormat,
    container_format: value('container_format') ?? 'bare',
  };
  const visibility = value('visibility');
  if (visibility !== undefined) image.visibility = visibility;
  const minDisk = wholeNumber(value('min_disk'), 'min_disk');
  if (minDisk !== undefined) image.min_disk = minDisk;
  const minRam = wholeNumber(value('min_ram'), 'min_ram');
  if (minRam !== undefined) image.min_ram = minRam;
  const tags = value('tags');
  if (tags !== undefined) image.tags = tags.split(',').map((t) => t.trim()).filter(Boolean);
  return { kind: 'create', image };
}

function wholeNumber(text: string | undefined, key: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text)) throw new InvalidMetadataError(`metadata ${key} is not a whole number`);
  return Number(text);
}
