// The young-generation flag of src/gc-tuning.ts takes effect when set at run time (V8 may drop or
// rename a flag; setFlagsFromString would not tell).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TUNING = new URL('../src/gc-tuning.ts', import.meta.url).href;

/** New-space size in MiB after churning through short-lived objects, some of them surviving a while. */
function newSpaceAfterChurn(importTuning: boolean): number {
  const script = `
    ${importTuning ? `await import(${JSON.stringify(TUNING)});` : ''}
    const v8 = await import('node:v8');
    const keep = [];
    for (let i = 0; i < 2e6; i++) {
      const o = { i, b: new Array(8) };
      if (i % 3 === 0) keep.push(o);
      if (keep.length > 50000) keep.splice(0, 25000);
    }
    const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
    console.log('new space MiB', s.space_size / 1048576);`;
  // A fixed ceiling (32 MiB of young generation), whatever memory this host has.
  const args = ['--max-semi-space-size=16', '--import', 'tsx', '--input-type=module', '-e', script];
  const { NODE_OPTIONS: _, ...env } = process.env;
  const out = execFileSync(process.execPath, args, { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  const m = /new space MiB (\S+)/.exec(out);
  assert.ok(m, `no measurement in: ${out}`);
  return Number(m[1]);
}

test('the young generation stays at its starting size under a high allocation rate', () => {
  const untuned = newSpaceAfterChurn(false);
  const tuned = newSpaceAfterChurn(true);
  assert.ok(untuned > 8, `without the flags the new space grows (here ${untuned} MiB): the churn is not heavy enough to tell`);
  assert.ok(tuned <= 4, `the new space grew to ${tuned} MiB: V8 ignored --semi-space-growth-factor`);
});
