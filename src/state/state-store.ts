import type { UploadRecord } from './upload-record.js';

export type RecordPatch = Partial<Omit<UploadRecord, 'id' | 'imageId' | 'createdAt'>>;

/**
 * Where upload records live. The first implementation is local files; a shared
 * (Redis) one must keep `create` atomic on the one-unfinished-upload-per-image rule.
 */
export interface UploadStateStore {
  /** Store a new record; throws UploadExistsError if the image has an upload still in progress. */
  create(record: UploadRecord): Promise<void>;
  get(id: string): Promise<UploadRecord | undefined>;
  /** Apply a patch and return the new record; throws NotFoundError for an unknown id. */
  update(id: string, patch: RecordPatch): Promise<UploadRecord>;
  delete(id: string): Promise<void>;
  list(): Promise<UploadRecord[]>;
}
