// The V8 flags of src/gc-tuning.ts take effect when set at run time (V8 may drop or rename a flag).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

/** New-space size in MiB after churning through short-lived objects, some of them surviving a while. */
function newSpaceAfterChurn(importTuning: boolean): number {
  const script = `
    ${importTuning ? "await import('./src/gc-tuning.ts');" : ''}
    const v8 = await import('node:v8');
    const keep = [];
    for (let i = 0; i < 2e6; i++) {
      const o = { i, b: new Array(8) };
      if (i % 3 === 0) keep.push(o);
      if (keep.length > 50000) keep.splice(0, 25000);
    }
    const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
    console.log(s.space_size / 1048576);`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  return Number(out.trim());
}

test('the young generation stays at its starting size under a high allocation rate', () => {
  const untuned = newSpaceAfterChurn(false);
  const tuned = newSpaceAfterChurn(true);
  assert.ok(untuned > 8, `without the flags the new space grows (here ${untuned} MiB): the churn is not heavy enough to tell`);
  assert.ok(tuned <= 4, `the new space grew to ${tuned} MiB: V8 ignored --semi-space-growth-factor`);
});
