import { ERRORS } from '@tus/utils';
import { statusOf, TUS_REFUSALS, type RequestErrorCode } from './error-codes.js';

/**
 * The gateway's errors as one typed set, and the one place that maps them to HTTP.
 * Layers below HTTP throw these; nothing below HTTP picks a status code: each code's status is
 * in the table of src/error-codes.ts.
 */
export abstract class GatewayError extends Error {
  abstract readonly code: RequestErrorCode;
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
/** Redis (upload records, locks, the push queue) does not answer. */
export class StateUnavailableError extends GatewayError {
  readonly code = 'state_unavailable';
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

export interface HttpError {
  status: number;
  body: { error: { code: RequestErrorCode; message: string } };
}

/** The answer for `code`, its status from the table. */
export function httpError(code: RequestErrorCode, message: string, upstream?: number): HttpError {
  return { status: statusOf(code, upstream), body: { error: { code, message } } };
}

type TusErrorKey = keyof typeof ERRORS;

/**
 * The key of a refusal @tus/server raised: the ERRORS entry itself, or a copy of one (with the
 * entry's own status and body, as ingest/direct-patch.ts raises its 413).
 */
export function tusRefusalKey(err: unknown): TusErrorKey | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { status_code?: unknown; body?: unknown };
  const entries = Object.entries(ERRORS) as [TusErrorKey, (typeof ERRORS)[TusErrorKey]][];
  const found =
    entries.find(([, entry]) => entry === err) ??
    entries.find(([, entry]) => entry.status_code === e.status_code && entry.body === e.body);
  return found?.[0];
}

/** Map any error to the status and JSON body the client sees; unknown errors never leak their message. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof GatewayError) return httpError(err.code, err.message, err.httpStatus);
  const key = tusRefusalKey(err);
  if (key) return httpError(TUS_REFUSALS[key], ERRORS[key].body.trim());
  return httpError('internal', 'internal error');
}
