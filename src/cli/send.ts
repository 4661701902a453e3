import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as tus from 'tus-js-client';
import { UsageError, type CliArgs } from './args.js';
import type { TokenSource } from './auth.js';
import { detectDiskFormat } from './detect-format.js';
import type { PendingPushes } from './pending.js';
import type { Reporter } from './progress.js';
import { heldUploads } from './restart.js';
import type { ResumeKey } from './resume-key.js';
import { UploadRefused, uploadFile } from './upload.js';

export interface SendContext {
  gateway: string;
  stateFile: string;
  pending: PendingPushes;
  key: ResumeKey;
  tokens: TokenSource;
  out: Reporter;
  /** How many uploads --restart just terminated. */
  terminated: number;
  onUpload: (u: tus.Upload) => void;
}

/**
 * Creation refusals an earlier upload of ours for the target explains: the gateway allows one
 * upload per image, and while that upload's push streams, the image stays `saving`.
 */
const HELD_BY_US = new Set(['upload_exists', 'image_not_queued']);
/** After --restart, how long Glance may take to put the aborted image back to `queued`. */
const SAVING_WAIT_MS = 30_000;

/** Upload the file (resuming the upload its resume key names, if any); the upload URL. */
export async function sendFile(args: CliArgs, ctx: SendContext): Promise<string> {
  const { key, out } = ctx;
  const held = await heldUploads(ctx.stateFile, ctx.pending, key);
  const stale = held.storageKeys.filter((k) => !k.startsWith(`tus::${key.fingerprint}`)).length + held.pendingKeys.length;
  if (stale) {
    out.note(`leaving ${stale} earlier upload(s) for this target alone: of another file, or of ${args.file} before it changed (--restart terminates them)`);
  }
  const metadata = await metadataFor(args, out);
  for (let waited = 0; ; waited += 1000) {
    try {
      return await sendOnce(args, ctx, metadata);
    } catch (err) {
      if (!(err instanceof UploadRefused) || !HELD_BY_US.has(err.code ?? '')) throw err;
      // A terminated streaming push: Glance notices the aborted PUT a moment later.
      if (ctx.terminated && /\bsaving\b/.test(err.message) && waited < SAVING_WAIT_MS) {
        if (!waited) out.note('waiting for Glance to give up the terminated upload (image still saving)');
        await sleep(1000);
        continue;
      }
      if (!held.urls.length) throw err;
      throw new UploadRefused(
        `${err.message}: an earlier upload by this client (${held.urls.join(', ')}), which does not match ` +
          `${args.file} as it is now; run the same command with --restart to terminate it and upload from scratch`,
        err.code,
      );
    }
  }
}

async function sendOnce(args: CliArgs, ctx: SendContext, metadata: Record<string, string>): Promise<string> {
  const { out } = ctx;
  const result = await uploadFile({
    file: args.file,
    endpoint: `${ctx.gateway}/files/`,
    metadata,
    tokens: ctx.tokens,
    stateFile: ctx.stateFile,
    fingerprint: ctx.key.fingerprint,
    chunkSize: args.chunkSize,
    retry: args.retry,
    onProgress: (sent, total) => out.uploadProgress(sent, total),
    onNote: (line) => out.note(line),
    onStarted: ctx.onUpload,
  });
  out.uploadDone((await fsp.stat(args.file)).size);
  out.note(`upload ${result.uploadUrl} complete${result.imageId ? ` for image ${result.imageId}` : ''}`);
  return result.uploadUrl;
}

async function metadataFor(args: CliArgs, out: Reporter): Promise<Record<string, string>> {
  const filename = path.basename(args.file);
  if (args.target.kind === 'existing') return { image_id: args.target.imageId, filename };
  const image = args.target.image;
  let diskFormat = image.diskFormat;
  if (!diskFormat) {
    const guess = await detectDiskFormat(args.file);
    if ('reason' in guess) throw new UsageError(`cannot guess the disk format (${guess.reason}): pass --disk-format`);
    diskFormat = guess.format;
    out.note(`disk_format ${diskFormat} (from the file's first bytes)`);
  }
  const meta: Record<string, string> = {
    name: image.name,
    disk_format: diskFormat,
    container_format: image.containerFormat,
    filename,
  };
  if (image.visibility) meta.visibility = image.visibility;
  if (image.tags?.length) meta.tags = image.tags.join(',');
  return meta;
}

