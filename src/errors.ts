/**
 * The gateway's errors as one typed set, and the one place that maps them to HTTP.
 * Layers below HTTP throw these; nothing below HTTP picks a status code.
 */
export abstract class GatewayError extends Error {
  abstract readonly code: string;
  /** Upstream (Glance/Keystone) status, when the error passes one on. */
  readonly httpStatus: number | undefined;

  constructor(message: string, httpStatus?: number) {
    super(message);
    this.name = new.target.name;
    this.httpStatus = httpStatus;
  }
}

export class TokenMissingError extends GatewayError {
  readonly code = 'token_missing';
}
export class TokenRejectedError extends GatewayError {
  readonly code = 'token_rejected';
}
export class NotFoundError extends GatewayError {
  readonly code = 'not_found';
}
export class ImageNotQueuedError extends GatewayError {
  readonly code = 'image_not_queued';
}
export class UploadExistsError extends GatewayError {
  readonly code = 'upload_exists';
}
export class ImageFormatMissingError extends GatewayError {
  readonly code = 'image_format_missing';
}
export class InvalidMetadataError extends GatewayError {
  readonly code = 'invalid_metadata';
}
export class InsufficientStorageError extends GatewayError {
  readonly code = 'insufficient_storage';
}
/** A project's share of the gateway (unfinished uploads, or the bytes they declare) is used up. */
export class QuotaExceededError extends GatewayError {
  readonly code = 'quota_exceeded';
}
export class ContentMismatchError extends GatewayError {
  readonly code = 'content_mismatch';
}
/** Glance answered a 4xx we pass on as it is (e.g. it refuses the image to create). */
export class GlanceRefusedError extends GatewayError {
  readonly code = 'glance_refused';
}
export class GlanceUnreachableError extends GatewayError {
  readonly code = 'glance_unreachable';
}
/** tus protocol refusals the gateway answers itself, as tusd does. */
export class TusVersionError extends GatewayError {
  readonly code = 'tus_version';
}
export class InvalidHeaderError extends GatewayError {
  readonly code = 'invalid_header';
}
export class ContentTypeError extends GatewayError {
  readonly code = 'content_type';
}
export class PushNotRestartableError extends GatewayError {
  readonly code = 'push_not_restartable';
}

const STATUS = new Map<abstract new (...args: never[]) => GatewayError, number>([
  [TokenMissingError, 401],
  [TokenRejectedError, 401],
  [NotFoundError, 404],
  [ImageNotQueuedError, 409],
  [UploadExistsError, 409],
  [PushNotRestartableError, 409],
  [ImageFormatMissingError, 400],
  [InvalidMetadataError, 400],
  [TusVersionError, 412],
  [InvalidHeaderError, 400],
  [ContentTypeError, 415],
  [ContentMismatchError, 415],
  [InsufficientStorageError, 507],
  [QuotaExceededError, 413],
  [GlanceUnreachableError, 502],
]);

export interface HttpError {
  status: number;
  body: { error: { code: string; message: string } };
}

/** Map any error to the status and JSON body the client sees; unknown errors never leak their message. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof GlanceRefusedError) {
    return { status: err.httpStatus ?? 400, body: { error: { code: err.code, message: err.message } } };
  }
  if (err instanceof GatewayError) {
    const status = STATUS.get(err.constructor as typeof GatewayError) ?? 500;
    return { status, body: { error: { code: err.code, message: err.message } } };
  }
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}
