/** The message of the gateway's JSON error body, `{"error":{"code","message"}}`. */
export function errorMessage(text: string): string | undefined {
  try {
    const msg = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    return typeof msg === 'string' ? msg : undefined;
  } catch {
    return undefined;
  }
}

/** The code of the same body (`upload_exists`, ...). */
export function errorCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}
