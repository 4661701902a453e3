#!/usr/bin/env node
// glance-upload: upload a disk image through the gateway with tus, then follow the push to Glance.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type * as tus from 'tus-js-client';
import type { UploadStatus } from '../ingest/uploads.js';
import { HELP, parseCliArgs, UsageError, type CliArgs } from './args.js';
import { AuthError, tokenSource } from './auth.js';
import { FollowError, followPush } from './follow.js';
import { type Verdict, Verifier, VerifyError } from './digest.js';
import { PendingPushes } from './pending.js';
import { reporter, type Reporter } from './progress.js';
import { heldUploads, terminateHeld } from './restart.js';
import { resumeKey } from './resume-key.js';
import { resumePending } from './resume-push.js';
import { sendFile } from './send.js';
import { UploadRefused } from './upload.js';

const DEFAULT_GATEWAY = 'http://127.0.0.1:1080';

async function run(args: CliArgs, env: NodeJS.ProcessEnv, out: Reporter, onUpload: (u: tus.Upload) => void): Promise<number> {
  const gateway = gatewayUrl(args.gateway ?? env.GLANCE_GATEWAY_URL ?? DEFAULT_GATEWAY);
  await checkFile(args.file);
  const tokens = tokenSource(args.token, env);
  await tokens.get(); // fail on credentials now, before any byte moves

  const stateFile = env.GLANCE_UPLOAD_STATE || path.join(os.homedir(), '.config', 'glance-upload', 'uploads.json');
  await fsp.mkdir(path.dirname(stateFile), { recursive: true, mode: 0o700 });
  const pending = PendingPushes.beside(stateFile);
  const key = await resumeKey(args.file, gateway, args.target);
  const terminated = args.restart
    ? await terminateHeld(await heldUploads(stateFile, pending, key), stateFile, pending, tokens, (l) => out.note(l))
    : 0;

  // A run stopped during the push: the bytes are there, only follow (or restart a failed push).
  let uploadUrl = await resumePending(await pending.get(key.fingerprint), tokens, out);
  if (!uploadUrl) {
    await pending.delete(key.fingerprint);
    uploadUrl = await sendFile(args, { gateway, stateFile, pending, key, tokens, out, terminated, onUpload });
    await pending.set(key.fingerprint, uploadUrl);
  }

  const verifier = new Verifier(args.file);
  verifier.start(); // hashes the file while the push is followed
  let status: UploadStatus;
  let unattended: boolean | undefined;
  try {
    status = await followPush({
      uploadUrl,
      tokens,
      retry: args.retry,
      onStatus: (s) => {
        verifier.start(s.glance?.os_hash_algo);
        out.push(s);
        if (s.state === 'active' || s.unattended === unattended) return;
        unattended = s.unattended;
        out.note(
          s.unattended
            ? 'the push finishes without this client: it may stop now (the gateway holds a trust)'
            : `the push needs this client (${s.unattendedReason}): keep it running until the image is active`,
        );
      },
      onNote: (line) => out.note(line),
    });
  } catch (err) {
    if (err instanceof FollowError) await pending.delete(key.fingerprint); // the upload is gone: a new run starts over
    throw err;
  }
  out.stop();
  // A failed push stays listed: running the command again starts it again.
  if (status.state !== 'active') return report(args, uploadUrl, status, undefined);
  await pending.delete(key.fingerprint);
  const verdict = await verifier.verify(status, (algo) => out.note(`checking the image against ${args.file} (${algo})`));
  return report(args, uploadUrl, status, verdict);
}

/** Prints the result; the exit status: 0 only for an active image verified against the file. */
function report(args: CliArgs, uploadUrl: string, status: UploadStatus, verdict: Verdict | undefined): number {
  const checksum = status.glance?.checksum ?? null;
  const verified = verdict?.kind === 'verified' ? verdict.digest : null;
  // The gateway's push error, or the CLI's own (digest_mismatch, unverified).
  let error: { code: string; message: string; httpStatus?: number } | undefined =
    status.state === 'active' ? undefined : status.error ?? { code: 'push_failed', message: 'unknown error' };
  if (verdict?.kind === 'mismatch') {
    const { local, glance } = verdict;
    error = {
      code: 'digest_mismatch',
      message: `image ${status.imageId} differs from ${args.file}: Glance has ${glance.algo} ${glance.value}, ` +
        `the file has ${local.algo} ${local.value}; the image is not what the file is now (was it changed during the upload?)`,
    };
  } else if (verdict?.kind === 'unverified') {
    error = { code: 'unverified', message: `image ${status.imageId} is active but was not checked against ${args.file}: ${verdict.reason}` };
  }
  if (args.json) {
    const result: Record<string, unknown> = {
      uploadId: uploadUrl.split('/').pop(),
      imageId: status.imageId,
      state: status.state,
      checksum,
      os_hash_value: status.glance?.os_hash_value ?? null,
      size: status.size,
      verified,
    };
    if (error) result.error = error;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else if (verified) {
    process.stdout.write(`image_id ${status.imageId}\nchecksum ${checksum}\nverified ${verified.algo} ${verified.value}\n`);
  }
  if (status.state !== 'active') process.stderr.write(`push failed: ${error?.message}\n`);
  else if (error) process.stderr.write(`glance-upload: ${error.message}\n`);
  return status.state === 'active' && verified ? 0 : 1;
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
    const known = err instanceof UsageError || err instanceof AuthError || err instanceof UploadRefused || err instanceof FollowError ||
      err instanceof VerifyError;
    process.stderr.write(`glance-upload: ${known ? (err as Error).message : String(err)}\n`);
    exit(code);
  }
}

void main();
