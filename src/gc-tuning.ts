import v8 from 'node:v8';

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
 * survives. At its starting size (2 MiB) scavenges come more often and each stays short.
 */
for (const flag of ['--no-incremental-marking', '--semi-space-growth-factor=1']) v8.setFlagsFromString(flag);
