import {
  GlanceRefusedError,
  GlanceUnreachableError,
  NotFoundError,
  TokenRejectedError,
  type GatewayError,
} from '../errors.js';
import { GlanceHttpError, GlanceNetworkError, NoImageEndpointError } from '../glance/errors.js';

/** What a Glance/Keystone failure means to a client request (not to a push, which retries). */
export function asRequestError(err: unknown, what: string): GatewayError | unknown {
  if (err instanceof GlanceHttpError) {
    if (err.status === 401) return new TokenRejectedError('the token was rejected by Keystone/Glance', 401);
    if (err.status === 403 || err.status === 404) return new NotFoundError(`${what} not found`, err.status);
    if (err.status < 500) return new GlanceRefusedError(`Glance refused: ${err.message}`, err.status);
    return new GlanceUnreachableError(`Glance failed: HTTP ${err.status} ${err.message}`, err.status);
  }
  if (err instanceof GlanceNetworkError || err instanceof NoImageEndpointError) {
    return new GlanceUnreachableError(`Glance unreachable: ${err.message}`);
  }
  return err;
}

/** Creating an image: Glance's own refusals (a 403 for a visibility the caller may not set, say) pass on as they are. */
export function asCreateError(err: unknown): GatewayError | unknown {
  if (err instanceof GlanceHttpError && err.status !== 401 && err.status < 500) {
    return new GlanceRefusedError(`Glance refused: ${err.message}`, err.status);
  }
  return asRequestError(err, 'image');
}
