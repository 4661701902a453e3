import type { ERRORS } from '@tus/utils';

/**
 * Every `error.code` a client can meet, in one table: in an HTTP answer's JSON body
 * (`{"error":{"code","message"}}`), in the status object's `error` (a push that failed or
 * waits), or both. The error classes, the tus refusal mapping, the OpenAPI enums and
 * docs/errors.md all come from here; test/docs.test.ts keeps the docs in step.
 */
export interface ErrorCodeSpec {
  /** The HTTP status a request is answered with; null: never an HTTP answer. */
  readonly status: number | null;
  /** Whose own 4xx is passed on instead of `status`, where there is one. */
  readonly passesOn?: string;
  /** May be the status object's `error.code`. */
  readonly push: boolean;
  readonly meaning: string;
}

export const ERROR_CODES = {
  // Requests: the access check and creation's pre-flight.
  token_missing: { status: 401, push: false, meaning: 'no `X-Auth-Token` header, or an empty one' },
  token_rejected: {
    status: 401,
    push: true,
    meaning: 'Keystone or Glance rejected the token, or it is not scoped to a project; in a push: Glance said 401, the push waits in `awaiting_token`',
  },
  not_found: {
    status: 404,
    push: false,
    meaning: 'no such upload or resource, a URL not written exactly `/files/{id}`, an upload or image of another project, or an image the token cannot see',
  },
  image_not_queued: { status: 409, push: false, meaning: 'the image named by `image_id` is not in status `queued`' },
  upload_exists: { status: 409, push: false, meaning: 'the image already has an unfinished upload here' },
  image_format_missing: { status: 400, push: false, meaning: 'the image has no `disk_format` or no `container_format`' },
  invalid_metadata: {
    status: 400,
    push: false,
    meaning: '`Upload-Metadata` malformed, or not exactly one of `image_id` and `name`, `image_id` not a UUID, a malformed `disk_format`, `min_disk`/`min_ram` not whole numbers, a value not UTF-8',
  },
  insufficient_storage: {
    status: 507,
    push: false,
    meaning: 'not enough free storage for the declared length (at creation), or for the rest of an upload that went idle (at PATCH; stored bytes are kept)',
  },
  quota_exceeded: {
    status: 413,
    push: false,
    meaning: 'the project holds `PROJECT_MAX_UNFINISHED_UPLOADS` unfinished uploads, or their declared lengths would pass `PROJECT_MAX_UNFINISHED_BYTES`',
  },
  content_mismatch: {
    status: 415,
    push: false,
    meaning: 'the bytes do not match the `disk_format`, or the image refers to other files; the upload is removed',
  },
  glance_refused: {
    status: 400,
    passesOn: "Glance's",
    push: true,
    meaning: 'Glance refused with a 4xx (creating the image, say a `visibility` the caller may not set); in a push: any 4xx but 401 and 409 (400, 403, 404, 413…), and the push is `failed`',
  },
  glance_unreachable: {
    status: 502,
    push: true,
    meaning: 'Glance or Keystone did not answer, or answered 5xx, or no image endpoint is in the catalog; in a push: a network error, retried (`failed` past `PUSH_MAX_ATTEMPTS`)',
  },
  state_unavailable: {
    status: 503,
    push: true,
    meaning: 'the shared state (Redis) cannot be reached: the request changed nothing, and nothing stored is lost; try again. In a push: a step could not be recorded, and the push is retried',
  },
  push_not_restartable: {
    status: 409,
    push: false,
    meaning: '`POST /files/{id}/push` with nothing to push: the upload is incomplete, or the image is `active`',
  },
  method_not_allowed: {
    status: 405,
    push: false,
    meaning: 'GET or POST at an upload URL: uploads are not downloadable (`Allow` lists the verbs)',
  },
  bad_request: {
    status: 400,
    passesOn: "the refusing layer's",
    push: false,
    meaning: 'a request the HTTP layer could not take, such as a malformed escape in the URL',
  },
  internal: {
    status: 500,
    push: true,
    meaning: 'an unexpected error; an answer never shows its message, the status object does',
  },

  // tus protocol refusals (the gateway's own checks and @tus/server's).
  tus_resumable_required: { status: 412, push: false, meaning: 'no `Tus-Resumable` header on a request other than OPTIONS' },
  tus_version: { status: 412, push: false, meaning: '`Tus-Resumable` other than `1.0.0`; the answer carries `Tus-Version`' },
  invalid_header: { status: 400, push: false, meaning: 'a tus header is missing or malformed (`Upload-Offset` on a PATCH, say)' },
  content_type: { status: 415, push: false, meaning: 'a PATCH body that is not `application/offset+octet-stream`' },
  invalid_length: { status: 400, push: false, meaning: '`Upload-Length` missing, negative or not a decimal integer' },
  too_large: {
    status: 413,
    push: false,
    meaning: '`Upload-Length` not below `MAX_UPLOAD_SIZE`, or a PATCH body without `Content-Length` that runs past the upload\'s length',
  },
  size_exceeded: { status: 413, push: false, meaning: 'a PATCH body that goes past `Upload-Length`' },
  offset_mismatch: {
    status: 409,
    push: false,
    meaning: '`Upload-Offset` is not the stored offset (another PATCH came first, say): HEAD, then resume',
  },
  gone: { status: 410, push: false, meaning: 'the upload expired (`UPLOAD_EXPIRY_HOURS`) and is being removed' },
  aborted: {
    status: 400,
    push: false,
    meaning: 'the request stopped early: its connection failed, or another request took the upload',
  },
  lock_timeout: { status: 500, push: false, meaning: 'another request held the upload too long; try again' },
  invalid_termination: { status: 400, push: false, meaning: 'tus refuses to terminate a completed upload (not enabled here)' },
  unsupported_extension: {
    status: 501,
    push: false,
    meaning: 'a tus extension this gateway does not offer: creation-defer-length, concatenation',
  },

  // Pushes: only ever in the status object.
  glance_error: {
    status: null,
    push: true,
    meaning: 'Glance answered 5xx to the upload of the data; retried (`failed` past `PUSH_MAX_ATTEMPTS`)',
  },
  image_busy: {
    status: null,
    push: true,
    meaning: 'the image is `saving`, `importing` or `uploading` (another transfer); looked at again later',
  },
  image_reset: { status: null, push: true, meaning: 'the image went back to `queued` (an earlier push was cut); pushed again' },
  verification_failed: {
    status: null,
    push: true,
    meaning: "after Glance's 204 the image is not `active`, or not with the upload's size and digest; the upload never goes `active`",
  },
  format_changed: {
    status: null,
    push: true,
    meaning: "the image's `disk_format` was changed in Glance to one the stored bytes do not match; Glance never gets them",
  },
  image_active_elsewhere: { status: null, push: true, meaning: 'the image is already `active` with other data' },
  image_unusable: {
    status: null,
    push: true,
    meaning: 'the image is in a status no push can change (`killed`, `deleted`, `deactivated`…)',
  },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;
type Spec<C extends ErrorCode> = (typeof ERROR_CODES)[C];

/** Codes a request may be answered with. */
export type RequestErrorCode = { [C in ErrorCode]: Spec<C>['status'] extends number ? C : never }[ErrorCode];
/** Codes of the status object's `error` (see PushError). */
export type PushErrorCode = { [C in ErrorCode]: Spec<C>['push'] extends true ? C : never }[ErrorCode];

const codes = Object.keys(ERROR_CODES) as ErrorCode[];
export const REQUEST_ERROR_CODES = codes.filter((c): c is RequestErrorCode => ERROR_CODES[c].status !== null);
export const PUSH_ERROR_CODES = codes.filter((c): c is PushErrorCode => ERROR_CODES[c].push);

/** The status of an answer with `code`; `upstream` counts only for a code that passes one on. */
export function statusOf(code: RequestErrorCode, upstream?: number): number {
  const spec: ErrorCodeSpec = ERROR_CODES[code];
  if (spec.passesOn && upstream !== undefined && upstream >= 400 && upstream < 500) return upstream;
  return spec.status!;
}

/** @tus/server's refusals, by their key in @tus/utils' ERRORS. */
export const TUS_REFUSALS = {
  MISSING_OFFSET: 'invalid_header',
  ABORTED: 'aborted',
  INVALID_TERMINATION: 'invalid_termination',
  ERR_LOCK_TIMEOUT: 'lock_timeout',
  INVALID_CONTENT_TYPE: 'content_type',
  FILE_NOT_FOUND: 'not_found',
  INVALID_OFFSET: 'offset_mismatch',
  FILE_NO_LONGER_EXISTS: 'gone',
  ERR_SIZE_EXCEEDED: 'size_exceeded',
  ERR_MAX_SIZE_EXCEEDED: 'too_large',
  INVALID_LENGTH: 'invalid_length',
  INVALID_METADATA: 'invalid_metadata',
  UNKNOWN_ERROR: 'internal',
  FILE_WRITE_ERROR: 'internal',
  UNSUPPORTED_CONCATENATION_EXTENSION: 'unsupported_extension',
  UNSUPPORTED_CREATION_DEFER_LENGTH_EXTENSION: 'unsupported_extension',
  UNSUPPORTED_EXPIRATION_EXTENSION: 'unsupported_extension',
} as const satisfies Record<keyof typeof ERRORS, RequestErrorCode>;

/** tus's request-header checks, by header: a header not named here is `invalid_header`. */
export const TUS_HEADER_CODES: Readonly<Record<string, RequestErrorCode>> = {
  'upload-length': 'invalid_length',
  'upload-metadata': 'invalid_metadata',
};
