/** A field of the gateway's JSON error body, `{"error":{"code","message"}}`. */
function errorField(text: string, field: 'code' | 'message'): string | undefined {
  try {
    const value = (JSON.parse(text) as { error?: Record<string, unknown> }).error?.[field];
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The message of the gateway's error body. */
export const errorMessage = (text: string): string | undefined => errorField(text, 'message');

/** The code of the same body (`upload_exists`, ...). */
export const errorCode = (text: string): string | undefined => errorField(text, 'code');
