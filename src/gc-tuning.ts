import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * V8 flags for a process that moves gigabytes through short-lived buffers. Imported first by
 * main.ts, before anything allocates.
 *
 * No incremental marking: V8 counts every ArrayBuffer allocated since the last full GC against
 * the old generation's limit, so once it sets a tight limit (after a quiet spell) it starts
 * incremental marking every few megabytes: about 70 full GCs per 2 GiB, which doubled the CPU of
 * an upload (see the README's benchmark notes). Without it, full GCs run only when the heap itself
 * fills; the buffers die young and scavenges free them.
 *
 * A young generation that does not grow: V8 doubles it up to 32 MiB when the allocation rate is
 * high, as it is in a transfer, and keeps that much resident although almost nothing in it
 * survives. At its starting size (1 to 2 MiB) scavenges come more often and each stays short.
 *
 * A scavenge once young ArrayBuffers hold 32 MiB, as in Node 20: V8 ties that trigger to its
 * new-space ceiling (4 MiB per unit of this flag without pointer compression), which Node 24's V8
 * quadrupled, to 128 MiB. The 64 MiB external-memory limit then came first, so full GCs, not
 * scavenges, freed a transfer's dead buffers: 60 per 2 GiB, 30 MiB more peak RSS and half again
 * the CPU.
 */
const flags = ['--no-incremental-marking', '--semi-space-growth-factor=1'];
// Measured on V8 13.6 only (Node 24).
if (Number.parseInt(process.versions.v8, 10) >= 13) flags.push('--scavenger-max-new-space-capacity-mb=8');
for (const flag of flags) v8.setFlagsFromString(flag);

// Node loads the whole module graph before it runs this module, which grows the young generation
// (to 8 MiB on Node 24). A last-resort GC shrinks it back, as V8 does in an idle process.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as ((options: object) => void) | undefined;
v8.setFlagsFromString('--no-expose-gc');
gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
