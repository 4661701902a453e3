export type Verdict =
  | { kind: 'ok' }
  | { kind: 'reject'; reason: string }
  | { kind: 'need-more' };

// Fresh objects each time so a caller mutating one cannot affect another.
export const ok = (): Verdict => ({ kind: 'ok' });
export const needMore = (): Verdict => ({ kind: 'need-more' });
export const reject = (reason: string): Verdict => ({ kind: 'reject', reason });
