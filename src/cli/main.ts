#!/usr/bin/env node
// glance-upload: upload a disk image through the gateway with tus, then follow the push to Glance.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type * as tus from 'tus-js-client';
import type { UploadStatus } from '../ingest/uploads.js';
import { HELP, parseCliArgs, UsageError, type CliArgs } from './args.js';
import { AuthError, tokenSource } from './auth.js';
import { detectDiskFormat } from './detect-format.js';
import { FollowError, followPush } from './follow.js';
import { PendingPushes, pushKey } from './pending.js';
import { reporter, type Reporter } from './progress.js';
import { resumePending } from './resume-push.js';
import { UploadRefused, uploadFile } from './upload.js';

const DEFAULT_GATEWAY = 'http://127.0.0.1:1080';

async function run(args: CliArgs, env: NodeJS.ProcessEnv, out: Reporter, onUpload: (u: tus.Upload) => void): Promise<number> {
  const gateway = gatewayUrl(args.gateway ?? env.GLANCE_GATEWAY_URL ?? DEFAULT_GATEWAY);
  await checkFile(args.file);
  const tokens = tokenSource(args.token, env);
  await tokens.get(); // fail on credentials now, before any byte moves

  const stateFile = env.GLANCE_UPLOAD_STATE || path.join(os.homedir(), '.config', 'glance-upload', 'uploads.json');
  await fsp.mkdir(path.dirname(stateFile), { recursive: true, mode: 0o700 });
  const pending = PendingPushes.beside(stateFile);
  const target = args.target.kind === 'existing' ? `image:${args.target.imageId}` : `name:${args.target.image.name}`;
  const key = await pushKey(args.file, gateway, target);

  // A run stopped during the push: the bytes are there, only follow (or restart a failed push).
  let uploadUrl = await resumePending(await pending.get(key), tokens, out);
  if (!uploadUrl) {
    await pending.delete(key);
    const result = await uploadFile({
      file: args.file,
      endpoint: `${gateway}/files/`,
      metadata: await metadataFor(args, out),
      tokens,
      stateFile,
      chunkSize: args.chunkSize,
      retry: args.retry,
      onProgress: (sent, total) => out.uploadProgress(sent, total),
      onNote: (line) => out.note(line),
      onStarted: onUpload,
    });
    uploadUrl = result.uploadUrl;
    out.uploadDone((await fsp.stat(args.file)).size);
    out.note(`upload ${uploadUrl} complete${result.imageId ? ` for image ${result.imageId}` : ''}`);
    await pending.set(key, uploadUrl);
  }

  let status: UploadStatus;
  try {
    status = await followPush({
      uploadUrl,
      tokens,
      retry: args.retry,
      onStatus: (s) => out.push(s),
      onNote: (line) => out.note(line),
    });
  } catch (err) {
    if (err instanceof FollowError) await pending.delete(key); // the upload is gone: a new run starts over
    throw err;
  }
  out.stop();
  // A failed push stays listed: running the command again starts it again.
  if (status.state === 'active') await pending.delete(key);
  report(args, uploadUrl, status);
  return status.state === 'active' ? 0 : 1;
}

function report(args: CliArgs, uploadUrl: string, status: UploadStatus): void {
  const checksum = status.glance?.checksum ?? null;
  if (args.json) {
    const result: Record<string, unknown> = {
      uploadId: uploadUrl.split('/').pop(),
      imageId: status.imageId,
      state: status.state,
      checksum,
      os_hash_value: status.glance?.os_hash_value ?? null,
      size: status.size,
    };
    if (status.error) result.error = status.error;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else if (status.state === 'active') {
    process.stdout.write(`image_id ${status.imageId}\nchecksum ${checksum}\n`);
  }
  if (status.state !== 'active') process.stderr.write(`push failed: ${status.error?.message ?? 'unknown error'}\n`);
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

function gatewayUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`gateway URL ${text} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`gateway URL ${text} is not http(s)`);
  return url.href.replace(/\/+$/, '');
}

async function checkFile(file: string): Promise<void> {
  const st = await fsp.stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new UsageError(`${file}: not a readable file`);
  await fsp.access(file, fsp.constants.R_OK).catch(() => {
    throw new UsageError(`${file}: not a readable file`);
  });
}

/** Exit once what was written has left, so a pipe reader sees the whole result. */
function exit(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

async function main(): Promise<void> {
  let args: CliArgs;
  try {
    args = parseCliArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`glance-upload: ${(err as Error).message} (see glance-upload --help)\n`);
    return exit(2);
  }
  if (args.help) {
    process.stdout.write(`${HELP}\n`);
    return exit(0);
  }
  const out = reporter(process.stderr, Boolean(process.stderr.isTTY) && !args.json);
  let upload: tus.Upload | undefined;
  const stop = (signal: NodeJS.Signals, code: number) => process.once(signal, () => {
    out.stop();
    void upload?.abort(); // leaves the upload on the gateway, to be resumed
    process.stderr.write('\ninterrupted: run the same command again to resume\n');
    exit(code);
  });
  stop('SIGINT', 130);
  stop('SIGTERM', 143);
  try {
    exit(await run(args, process.env, out, (u) => (upload = u)));
  } catch (err) {
    out.stop();
    const code = err instanceof UsageError || err instanceof AuthError ? 2 : 1;
    const known = err instanceof UsageError || err instanceof AuthError || err instanceof UploadRefused || err instanceof FollowError;
    process.stderr.write(`glance-upload: ${known ? (err as Error).message : String(err)}\n`);
    exit(code);
  }
}

void main();
