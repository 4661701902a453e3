// The flags of src/gc-tuning.ts take effect when set at run time (V8 may drop or rename a flag;
// setFlagsFromString would not tell).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TUNING = new URL('../src/gc-tuning.ts', import.meta.url).href;
const importTuning = `await import(${JSON.stringify(TUNING)});`;

/** What a fresh Node process prints after `MEASURED` when it runs `script`. */
function measure(script: string): string {
  const code = `const v8 = await import('node:v8');
    const newSpaceMiB = () => v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size / 1048576;
    const churn = () => {
      const keep = [];
      for (let i = 0; i < 2e6; i++) {
        const o = { i, b: new Array(8) };
        if (i % 3 === 0) keep.push(o);
        if (keep.length > 50000) keep.splice(0, 25000);
      }
    };
    ${script}`;
  // A fixed ceiling (32 MiB of young generation), whatever memory this host has.
  const args = ['--max-semi-space-size=16', '--import', 'tsx', '--input-type=module', '-e', code];
  const { NODE_OPTIONS: _, ...env } = process.env;
  const out = execFileSync(process.execPath, args, { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  const m = /MEASURED (.*)/.exec(out);
  assert.ok(m, `no measurement in: ${out}`);
  return m[1]!;
}

/** New-space size in MiB after churning through short-lived objects, some of them surviving a while. */
const newSpaceAfterChurn = (tuned: boolean) => Number(measure(`${tuned ? importTuning : ''} churn(); console.log('MEASURED', newSpaceMiB());`));

test('the young generation stays at its starting size under a high allocation rate', () => {
  const untuned = newSpaceAfterChurn(false);
  const tuned = newSpaceAfterChurn(true);
  assert.ok(untuned > 8, `without the flags the new space grows (here ${untuned} MiB): the churn is not heavy enough to tell`);
  assert.ok(tuned <= 4, `the new space grew to ${tuned} MiB: V8 ignored --semi-space-growth-factor`);
});

test('a young generation grown before the import goes back to its starting size', () => {
  const [before, after] = measure(`churn(); const before = newSpaceMiB(); ${importTuning} churn(); console.log('MEASURED', before, newSpaceMiB());`)
    .split(' ')
    .map(Number);
  assert.ok(before! > 8, `the new space did not grow before the import (${before} MiB): the churn is not heavy enough to tell`);
  assert.ok(after! <= 2, `the new space is still ${after} MiB after the import (it was ${before} MiB): V8 ignored the GC's options`);
});

/** Full and young-generation GCs while 1 GiB of 1 MiB buffers is allocated, each dead at once. */
function gcsOverDeadBuffers(tuned: boolean): { full: number; young: number } {
  const out = measure(`${tuned ? importTuning : ''}
    const profiler = new v8.GCProfiler();
    profiler.start();
    let bytes = 0;
    for (let i = 0; i < 1024; i++) bytes += Buffer.allocUnsafeSlow(1 << 20).length;
    const kinds = profiler.stop().statistics.map((s) => s.gcType);
    console.log('MEASURED', bytes, kinds.filter((k) => k === 'MarkSweepCompact').length, kinds.filter((k) => k === 'Scavenge').length);`);
  const [bytes, full, young] = out.split(' ').map(Number);
  assert.equal(bytes, 1 << 30);
  return { full: full!, young: young! };
}

test('scavenges, not full GCs, free the dead buffers of a transfer', () => {
  const untuned = gcsOverDeadBuffers(false);
  const tuned = gcsOverDeadBuffers(true);
  assert.ok(untuned.full >= 5, `without the flags V8 runs full GCs (here ${untuned.full}): the allocation is not heavy enough to tell`);
  // One may come due anyway, for the heap itself.
  assert.ok(tuned.full <= 1, `${tuned.full} full GCs: V8 ignored --scavenger-max-new-space-capacity-mb`);
  assert.ok(tuned.young >= 8, `only ${tuned.young} scavenges for 1 GiB of buffers`);
});
