import type { Dispatcher } from 'undici';

/**
 * Close an undici dispatcher at shutdown: requests still running get `graceMs` to end (an aborted
 * push's request may still be draining its body), then the connections are destroyed, so that a
 * stuck peer never holds the process open.
 */
export async function closeDispatcher(dispatcher: Dispatcher, graceMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  const closing = dispatcher.close().catch(() => undefined);
  const outcome = await Promise.race([closing, late]);
  clearTimeout(timer);
  if (outcome === 'late') await dispatcher.destroy().catch(() => undefined);
}
