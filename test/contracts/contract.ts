// A conformance suite is named checks grouped by topic, each taking the implementation's factory.
// `register` runs them as tests; `failures` runs them outside the runner (to show a suite catches a bad implementation).
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

export type Check<F> = (make: F) => Promise<void>;
export type Suite<F> = Record<string, Record<string, Check<F>>>;

const CHECK_TIMEOUT_MS = 10_000;

export function register<F>(title: string, suite: Suite<F>, make: F): void {
  describe(title, () => {
    for (const [group, checks] of Object.entries(suite)) {
      describe(group, () => {
        for (const [name, check] of Object.entries(checks)) it(name, { timeout: CHECK_TIMEOUT_MS }, () => check(make));
      });
    }
  });
}

/** Every check of `suite` run against `make`: the names (`group › check`) of those that failed. */
export async function failures<F>(suite: Suite<F>, make: F): Promise<string[]> {
  const failed: string[] = [];
  for (const [group, checks] of Object.entries(suite)) {
    for (const [name, check] of Object.entries(checks)) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), CHECK_TIMEOUT_MS);
      });
      await Promise.race([check(make), timeout])
        .catch(() => failed.push(`${group} › ${name}`))
        .finally(() => clearTimeout(timer));
    }
  }
  return failed;
}

/** Ids unique per run, so that a shared backend's earlier entries never meet a check's. */
export function uid(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves when `check` holds, polling; rejects after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}
