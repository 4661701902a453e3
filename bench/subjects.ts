// One measured run of each subject. Each leaves nothing behind: images deleted, files removed.
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { curlUpload, sinkPut, sinkPutChunks, tusCreate, tusJsUpload, tusPatchAll, watchUpload, type Watch } from './clients.js';
import { emptyDir, type Context } from './context.js';
import { now } from './measure.js';
import type { ServerProcess } from './servers/spawn.js';

const sizeOf = (path: string) => fs.statSync(path).size;

export interface GatewayTimes {
  /** first byte of the PATCH → its 204 (rows 1, 2) */
  ingestMs: number;
  /** the 204 → state `active` (row 3) */
  pushMs: number;
  /** first byte → state `active` (row 4) */
  activeMs: number;
  /** CPU seconds of the gateway and of Glance, during the PATCH and after it (the push) */
  cpu: { gatewayIngest: number; gatewayPush: number; glanceIngest: number; glancePush: number };
}

/** Wait for `active` on the event stream, then delete the image. */
async function finish(ctx: Context, watch: Watch, imageId: string): Promise<number> {
  try {
    return await watch.until('active');
  } finally {
    watch.close();
    await ctx.stack.deleteImage(imageId);
  }
}

/**
 * Gateway, one PATCH: create (outside the timing), then the whole file in one PATCH.
 * The event stream is opened before the PATCH so the push's state changes are seen as
 * they happen; polling /status would cost a Glance and Keystone call per poll.
 */
export async function gatewayOnePatch(ctx: Context, gw: ServerProcess, path: string): Promise<GatewayTimes> {
  const token = await ctx.stack.token();
  const imageId = await ctx.stack.createImage('bench-one-patch');
  const url = await tusCreate(`${gw.url}/files/`, sizeOf(path), { image_id: imageId }, token);
  const watch = await watchUpload(url, token);
  const cpu = () => Promise.all([gw.cpuSeconds(), ctx.stack.glanceCpuSeconds()]);
  const c0 = await cpu();
  const t0 = now();
  await tusPatchAll(url, path, token).catch(async (err) => {
    watch.close();
    await ctx.stack.deleteImage(imageId);
    throw err;
  });
  const t1 = now();
  const c1 = await cpu();
  const t2 = await watch.until('active').finally(() => watch.close());
  const c2 = await cpu();
  await ctx.stack.deleteImage(imageId);
  return {
    ingestMs: t1 - t0,
    pushMs: t2 - t1,
    activeMs: t2 - t0,
    cpu: { gatewayIngest: c1[0] - c0[0], gatewayPush: c2[0] - c1[0], glanceIngest: c1[1] - c0[1], glancePush: c2[1] - c1[1] },
  };
}

/** A time and the CPU seconds the server (or Glance) spent meanwhile. */
export interface Timed {
  ms: number;
  cpu: number;
}

export async function sinkOnePut(sink: ServerProcess, dir: string, path: string): Promise<Timed> {
  const c0 = await sink.cpuSeconds();
  const t0 = now();
  await sinkPut(sink.url, `one-${randomUUID()}`, path);
  const ms = now() - t0;
  const cpu = (await sink.cpuSeconds()) - c0;
  await emptyDir(dir);
  return { ms, cpu };
}

/** Bare @tus/server: creation outside the timing, as for the gateway. */
export async function tusOnePatch(srv: ServerProcess, dir: string, path: string): Promise<Timed> {
  const url = await tusCreate(`${srv.url}/files`, sizeOf(path), { filename: 'bench' });
  const c0 = await srv.cpuSeconds();
  const t0 = now();
  await tusPatchAll(url, path);
  const ms = now() - t0;
  const cpu = (await srv.cpuSeconds()) - c0;
  await emptyDir(dir);
  return { ms, cpu };
}

/** `curl -T` into a fresh image; Glance answers once the image is `active`. `cpu`: Glance's. */
export async function curlPush(ctx: Context, path: string): Promise<Timed> {
  const imageId = await ctx.stack.createImage('bench-curl');
  try {
    const token = await ctx.stack.token();
    const c0 = await ctx.stack.glanceCpuSeconds();
    const ms = await curlUpload(ctx.stack.glanceUrl, token, imageId, path);
    const cpu = (await ctx.stack.glanceCpuSeconds()) - c0;
    const status = await ctx.stack.imageStatus(imageId);
    if (status !== 'active') throw new Error(`curl -T left the image ${status}`);
    return { ms, cpu };
  } finally {
    await ctx.stack.deleteImage(imageId);
  }
}

/**
 * Gateway with tus-js-client: creation and every PATCH timed, as a user sees it. The image
 * is made before the clock starts; `active` is awaited after it stops (the event stream is
 * opened only then, so that it costs the upload nothing).
 */
export async function gatewayTusJs(ctx: Context, gw: ServerProcess, path: string): Promise<number> {
  const token = await ctx.stack.token();
  const imageId = await ctx.stack.createImage('bench-tus-js');
  const t0 = now();
  let url: string;
  try {
    ({ url } = await tusJsUpload(`${gw.url}/files/`, path, ctx.cfg.chunkSize, { metadata: { image_id: imageId }, token }));
  } catch (err) {
    await ctx.stack.deleteImage(imageId);
    throw err;
  }
  const ms = now() - t0;
  await awaitActive(ctx, url, token, imageId);
  return ms;
}

/** Wait until a gateway upload is `active`, then delete its image. */
export async function awaitActive(ctx: Context, url: string, token: string, imageId: string): Promise<void> {
  let watch: Watch;
  try {
    watch = await watchUpload(url, token);
  } catch (err) {
    await ctx.stack.deleteImage(imageId);
    throw err;
  }
  await finish(ctx, watch, imageId);
}

export async function tusTusJs(ctx: Context, srv: ServerProcess, dir: string, path: string): Promise<number> {
  const t0 = now();
  await tusJsUpload(`${srv.url}/files`, path, ctx.cfg.chunkSize, { metadata: { filename: 'bench' } });
  const ms = now() - t0;
  await emptyDir(dir);
  return ms;
}

export async function sinkChunks(ctx: Context, sink: ServerProcess, dir: string, path: string): Promise<number> {
  const t0 = now();
  await sinkPutChunks(sink.url, `chunks-${randomUUID()}`, path, sizeOf(path), ctx.cfg.chunkSize);
  const ms = now() - t0;
  await emptyDir(dir);
  return ms;
}
