import type { Dispatcher } from 'undici';
import { GlanceHttpError } from './errors.js';
import { redact } from './redact.js';

const MAX_MESSAGE = 300;

/**
 * Glance and Keystone speak JSON (with `Accept: application/json`) or, on some paths, HTML.
 * The message is redacted here, before anything logs, stores or serves it.
 */
function messageOf(text: string, status: number): string {
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    const inner = (json.error ?? json) as Record<string, unknown>;
    const msg = inner.message ?? inner.explanation ?? inner.title;
    if (typeof msg === 'string' && msg.trim()) return redact(msg.trim(), MAX_MESSAGE);
  } catch {
    // not JSON: fall through to the text itself
  }
  const plain = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return redact(plain || `HTTP ${status}`, MAX_MESSAGE);
}

/** Read a JSON body of a 2xx answer, or throw GlanceHttpError with the service's own message. */
export async function jsonOrThrow<T>(res: Dispatcher.ResponseData): Promise<T> {
  if (res.statusCode >= 200 && res.statusCode < 300) return (await res.body.json()) as T;
  throw new GlanceHttpError(res.statusCode, messageOf(await res.body.text(), res.statusCode));
}

export async function emptyOrThrow(res: Dispatcher.ResponseData): Promise<void> {
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) {
    throw new GlanceHttpError(res.statusCode, messageOf(text, res.statusCode));
  }
}
