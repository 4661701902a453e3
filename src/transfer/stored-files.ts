import type { Readable } from 'node:stream';

/** What a push needs from the ingest side's storage: the bytes, and a way to free them. */
export interface StoredFiles {
  /** Path of the complete data file (hashing reads it directly). */
  path(uploadId: string): string;
  read(uploadId: string): Readable;
  /** Free the disk space of a pushed upload while keeping its tus offset. */
  release(uploadId: string): Promise<void>;
}
