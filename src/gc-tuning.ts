import v8 from 'node:v8';

/**
 * V8 counts every ArrayBuffer allocated since the last full GC against the old generation's
 * limit. A gateway moves gigabytes through short-lived 64 KiB socket buffers, so once V8 sets
 * a tight limit (after a quiet spell) it starts incremental marking every few megabytes: about
 * 70 full GCs per 2 GiB, which doubled the CPU of an upload (see the README's benchmark notes).
 * Without incremental marking, full GCs run only when the heap itself fills; the buffers die
 * young and scavenges free them. The heap stays small, so each full GC is a short pause.
 * Imported first by main.ts: flags apply to the whole process, workers included.
 */
v8.setFlagsFromString('--no-incremental-marking');
