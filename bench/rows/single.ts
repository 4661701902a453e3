// Rows 1 (ingest, one PATCH), 3 (push) and 4 (time to active): one campaign. Ingest and push are
// measured on a gateway that stores, then pushes (PUSH_STREAMING=0): each is then alone on the
// machine's 2 cores, as its reference is. Time to active is measured on the default gateway, which
// pushes while the upload arrives. Subjects alternate run by run, so noise hits all.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { formatSize, GiB, type RowName } from '../config.js';
import { freshDir, type Context } from '../context.js';
import { log } from '../log.js';
import { mibPerSec, now, rotation, settle, stats } from '../measure.js';
import { line, type Row } from '../report.js';
import { spawnBareTus, spawnGateway, spawnSink, type ServerProcess } from '../servers/spawn.js';
import { curlPush, gatewayOnePatch, sinkOnePut, tusOnePatch, type GatewayTimes, type Timed } from '../subjects.js';

const s = (ms: number) => ms / 1000;
const rate = (size: number, ms: number) => `${s(ms).toFixed(2)} s (${mibPerSec(size, ms).toFixed(0)} MiB/s)`;

export async function singlePatchRows(ctx: Context, want: Set<RowName>): Promise<Row[]> {
  const { size, runs } = ctx.cfg;
  const file = ctx.file(size);
  const ingest = want.has('ingest');
  const curl = want.has('push') || want.has('active');

  const servers: ServerProcess[] = [];
  try {
    const gw = await spawnGateway(await freshDir(ctx, 'gateway-single'), ctx.stack, { PUSH_STREAMING: '0' });
    servers.push(gw);
    const streaming = await spawnGateway(await freshDir(ctx, 'gateway-streaming'), ctx.stack);
    servers.push(streaming);
    const gwRuns: GatewayTimes[] = [];
    const streamRuns: GatewayTimes[] = [];
    const sinkRuns: Timed[] = [];
    const tusRuns: Timed[] = [];
    const curlRuns: Timed[] = [];
    type Subject = { name: string; run: () => Promise<string> };
    const subjects: Subject[] = [
      {
        name: 'gateway, store then push',
        run: async () => {
          const t = await gatewayOnePatch(ctx, gw, file);
          gwRuns.push(t);
          return `PATCH ${rate(size, t.ingestMs)}, push ${s(t.pushMs).toFixed(2)} s, to active ${s(t.activeMs).toFixed(2)} s`;
        },
      },
    ];
    if (want.has('active')) {
      subjects.push({
        name: 'gateway, streaming push',
        run: async () => {
          const t = await gatewayOnePatch(ctx, streaming, file);
          streamRuns.push(t);
          return `PATCH ${rate(size, t.ingestMs)}, to active ${s(t.activeMs).toFixed(2)} s`;
        },
      });
    }
    const sinkDir = await freshDir(ctx, 'sink');
    const sink = ingest || want.has('active') ? await spawnSink(sinkDir) : undefined;
    if (sink) servers.push(sink);
    if (ingest && sink) {
      const tusDir = await freshDir(ctx, 'tus');
      const bare = await spawnBareTus(tusDir);
      servers.push(bare);
      subjects.push({ name: 'sink', run: async () => note(size, sinkRuns, await sinkOnePut(sink, sinkDir, file)) });
      subjects.push({ name: '@tus/server', run: async () => note(size, tusRuns, await tusOnePatch(bare, tusDir, file)) });
    }
    // The host's floor for streaming: storing the bytes and Glance taking them at the same time,
    // with no gateway in between (the sink's PUT and curl -T of the same file, started together).
    const floorRuns: Timed[] = [];
    if (want.has('active') && sink) {
      subjects.push({
        name: 'sink PUT and curl -T at once',
        run: async () => {
          const t0 = now();
          const [, pushed] = await Promise.all([sinkOnePut(sink, sinkDir, file), curlPush(ctx, file)]);
          return note(size, floorRuns, { ms: now() - t0, cpu: pushed.cpu });
        },
      });
    }
    if (curl) subjects.push({ name: 'curl -T', run: async () => note(size, curlRuns, await curlPush(ctx, file)) });
    // The gateway's push starts while the bytes it just stored are still dirty in the page cache;
    // this curl -T starts from the same state: the same amount written to the same disk just before.
    const dirtyRuns: Timed[] = [];
    if (want.has('push')) {
      subjects.push({
        name: 'curl -T after writing the same bytes',
        run: async () => {
          const copy = path.join(ctx.tmp, 'just-written.bin');
          await fsp.copyFile(file, copy);
          try {
            return note(size, dirtyRuns, await curlPush(ctx, file));
          } finally {
            await fsp.rm(copy, { force: true });
          }
        },
      });
    }

    for (let run = 0; run < runs; run++)
      for (const subject of rotation(subjects, run)) {
        await settle();
        log(`one PATCH of ${formatSize(size)}, run ${run + 1}/${runs}, ${subject.name}: ${await subject.run()}`);
      }

    // Median CPU seconds per GiB: where the time goes (2 cores for client, server and Glance).
    const perGiB = (xs: number[]) => (stats(xs).median / (size / GiB)).toFixed(2);
    const rows: Row[] = [];
    const raw = { gateway: gwRuns, streaming: streamRuns, sink: sinkRuns, bareTus: tusRuns, curl: curlRuns, curlAfterWrite: dirtyRuns, floor: floorRuns }; // ms and CPU s per run
    const gwIngest = line('gateway', 's', gwRuns.map((t) => s(t.ingestMs)), { bytes: size });
    const curlLine = line('curl -T into Glance', 's', curlRuns.map((t) => s(t.ms)), { bytes: size, ref: true });
    if (ingest) {
      const sinkLine = line('batching sink, one PUT', 's', sinkRuns.map((t) => s(t.ms)), { bytes: size, ref: true });
      gwIngest.ratio = gwIngest.stats.median / sinkLine.stats.median;
      gwIngest.check = { target: '<= 1.25x', pass: gwIngest.ratio <= 1.25 };
      const tusLine = line('bare @tus/server, one PATCH', 's', tusRuns.map((t) => s(t.ms)), { bytes: size });
      tusLine.ratio = tusLine.stats.median / sinkLine.stats.median;
      gwIngest.subject = 'gateway, one PATCH (no streaming push)';
      rows.push({
        key: 'ingest',
        title: `1 ingest, one PATCH, ${formatSize(size)}`,
        lines: [sinkLine, gwIngest, tusLine],
        raw,
        note:
          `server CPU s/GiB: sink ${perGiB(sinkRuns.map((t) => t.cpu))}, gateway ${perGiB(gwRuns.map((t) => t.cpu.gatewayIngest))} ` +
          `(Glance meanwhile ${perGiB(gwRuns.map((t) => t.cpu.glanceIngest))}), @tus/server ${perGiB(tusRuns.map((t) => t.cpu))}`,
      });
    }
    if (want.has('push')) {
      const push = line('gateway push (204 -> active)', 's', gwRuns.map((t) => s(t.pushMs)), { bytes: size });
      push.ratio = push.stats.median / curlLine.stats.median;
      push.check = { target: '<= 1.05x', pass: push.ratio <= 1.05 };
      const dirtyLine = line('curl -T right after writing the same bytes', 's', dirtyRuns.map((t) => s(t.ms)), { bytes: size });
      dirtyLine.ratio = dirtyLine.stats.median / curlLine.stats.median;
      rows.push({
        key: 'push',
        title: `3 push to Glance, ${formatSize(size)}`,
        lines: [curlLine, push, dirtyLine],
        raw,
        note:
          `CPU s/GiB during the push: Glance ${perGiB(gwRuns.map((t) => t.cpu.glancePush))} + gateway ${perGiB(gwRuns.map((t) => t.cpu.gatewayPush))}; ` +
          `Glance under curl ${perGiB(curlRuns.map((t) => t.cpu))}, under curl after a write ${perGiB(dirtyRuns.map((t) => t.cpu))}; ` +
          `gateway push / curl after a write: ${(push.stats.median / dirtyLine.stats.median).toFixed(2)}x` +
          overlap(gwRuns.map((t) => t.cpu.glancePush), curlRuns.map((t) => t.cpu)),
      });
    }
    if (want.has('active')) {
      const active = line('gateway streaming, first byte -> active', 's', streamRuns.map((t) => s(t.activeMs)), { bytes: size });
      const refMedian = Math.max(gwIngest.stats.median, curlLine.stats.median);
      const ref = line('max(gateway ingest, curl -T)', 's', [], { bytes: size, ref: true });
      ref.stats = { median: refMedian, min: NaN, max: NaN, n: 0 };
      active.ratio = active.stats.median / refMedian;
      active.check = { target: '<= 1.15x', pass: active.ratio <= 1.15 };
      const floor = line('floor: sink PUT and curl -T at once', 's', floorRuns.map((t) => s(t.ms)), { bytes: size });
      floor.ratio = floor.stats.median / refMedian;
      rows.push({
        key: 'active',
        title: `4 time to active, ${formatSize(size)}`,
        lines: [ref, active, floor],
        raw,
        note:
          `reference: medians of gateway ingest alone ${gwIngest.stats.median.toFixed(2)} s, curl -T ${curlLine.stats.median.toFixed(2)} s; ` +
          `store then push: ${stats(gwRuns.map((t) => s(t.activeMs))).median.toFixed(2)} s; ` +
          `gateway streaming / floor: ${(active.stats.median / floor.stats.median).toFixed(2)}x` +
          (sinkRuns.length
            ? `; against max(sink, curl -T) instead: ${(active.stats.median / Math.max(stats(sinkRuns.map((t) => s(t.ms))).median, curlLine.stats.median)).toFixed(2)}x`
            : ''),
      });
    }
    return rows;
  } finally {
    for (const srv of servers) await srv.stop();
  }
}

function note(size: number, into: Timed[], t: Timed): string {
  into.push(t);
  return `${rate(size, t.ms)}, server CPU ${t.cpu.toFixed(2)} s`;
}

/** When Glance did most of its work before the 204, the gateway pushed while receiving. */
function overlap(glanceAfter204: number[], glanceUnderCurl: number[]): string {
  const share = stats(glanceAfter204).median / stats(glanceUnderCurl).median;
  return share < 0.5 ? `; the push overlapped the PATCH (only ${(share * 100).toFixed(0)} % of Glance's work came after the 204): see row 4` : '';
}
