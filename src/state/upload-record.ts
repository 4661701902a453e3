/** The push states of the contract, in the order an upload normally walks them. */
export const UPLOAD_STATES = [
  'receiving',
  'queued',
  'pushing',
  'verifying',
  'active',
  'retrying',
  'awaiting_token',
  'failed',
] as const;
export type UploadState = (typeof UPLOAD_STATES)[number];

/** States in which the push has work left to do and may be resumed. */
export const UNFINISHED_PUSH_STATES: readonly UploadState[] = ['queued', 'pushing', 'verifying', 'retrying', 'awaiting_token'];

export interface GlanceSnapshot {
  status: string;
  size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
}

export interface PushError {
  code: import('../error-codes.js').PushErrorCode;
  message: string;
  httpStatus?: number;
}

/**
 * A digest of the stored file, named as Glance names its own (`os_hash_algo`): the proof that
 * Glance holds exactly these bytes.
 */
export interface ContentHash {
  algo: string;
  value: string;
}

/** The instance running an upload's push (`pushing`, `verifying`), until it renews or lets go. */
export interface Lease {
  owner: string;
  until: string;
}

/**
 * The Keystone trust that lets a push go on without its client: the id alone (useless without the
 * service user's password), or why the upload has none and needs its client's token.
 */
export type UploadTrust = { id: string } | { none: string };

/** What the gateway persists about one upload. Never holds a token. */
export interface UploadRecord {
  id: string;
  imageId: string;
  /** The Keystone project that owns the image: the only one whose tokens may act on the upload. */
  projectId: string;
  /** The Keystone user who created the upload: the only one whose tokens may write to it or push it. */
  userId: string;
  /** The gateway created the image (the `name` flow): it deletes it again if the upload never completes. */
  createdImage: boolean;
  /** Glance endpoint root the image lives at (static, or from the creator's catalog). */
  glanceUrl: string;
  diskFormat: string;
  size: number;
  state: UploadState;
  pushed: number;
  attempts: number;
  nextAttemptAt: string | null;
  glance: GlanceSnapshot | null;
  error: PushError | null;
  /** Digest of the complete stored file, once a push has read it whole. */
  hash: ContentHash | null;
  /** Set only in `pushing` and `verifying`; the store takes, renews and drops it. */
  lease: Lease | null;
  /** null until a trust was asked for (or after it was deleted); absent in records older than trusts. */
  trust?: UploadTrust | null;
  createdAt: string;
  updatedAt: string;
}

export function newRecord(
  fields: Pick<UploadRecord, 'id' | 'imageId' | 'projectId' | 'userId' | 'createdImage' | 'glanceUrl' | 'diskFormat' | 'size'>,
): UploadRecord {
  const now = new Date().toISOString();
  return {
    ...fields,
    state: 'receiving',
    pushed: 0,
    attempts: 0,
    nextAttemptAt: null,
    glance: null,
    error: null,
    hash: null,
    lease: null,
    trust: null,
    createdAt: now,
    updatedAt: now,
  };
}
