// The push proves Glance's bytes with one digest, the one Glance computes itself
// (its multihash, or the MD5 checksum of a Glance that has none), and learns which one that is.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Image } from '../src/glance/image.js';
import { LocalFiles } from '../src/storage/local-files.js';
import { hashStored } from '../src/transfer/hashing.js';
import { holdsOurBytes } from '../src/transfer/image-verdict.js';
import { FakeGlance } from './support/fake-glance.js';
import { makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, waitForState, type TestGateway } from './support/gateway.js';
import { tusUpload } from './support/tus.js';

let file: { path: string; sha256: string };
let data: Buffer;

before(async () => {
  file = await makeFile(await tempDir('gw-verify-'), 'disk.raw', 6 * MiB);
  data = await fsp.readFile(file.path);
});
after(async () => fsp.rm(path.dirname(file.path), { recursive: true, force: true }));

const hex = (algo: string, bytes: Buffer) => createHash(algo).update(bytes).digest('hex');

/** A gateway in front of a fake Glance hashing as `opts` say; closed after `body`. */
async function withGlance(opts: Parameters<typeof FakeGlance.start>[0], body: (glance: FakeGlance, gw: TestGateway) => Promise<void>) {
  const glance = await FakeGlance.start(opts);
  const gw = await startGateway({ GLANCE_URL: glance.url });
  try {
    await body(glance, gw);
  } finally {
    await gw.close();
    await glance.stop();
  }
}

async function upload(glance: FakeGlance, gw: TestGateway) {
  const image = glance.createImage('project-a');
  const { uploadUrl } = await tusUpload(gw.url, file.path, { token: 'token-a', metadata: { image_id: image.id } });
  const id = uploadUrl.split('/').pop()!;
  const { status } = await waitForState(gw.url, `/files/${id}`, 'token-a', ['active', 'failed']);
  const record = (await gw.gateway.uploads.record(id))!;
  return { id, status, record, recomputed: gw.logs.lines.filter((l) => l.includes(id) && l.includes('digest computed again')) };
}

test('default Glance (SHA-512 multihash): active, the stored digest is the SHA-512 Glance reports', async () => {
  await withGlance({}, async (glance, gw) => {
    const { status, record, recomputed } = await upload(glance, gw);
    assert.equal(status.state, 'active', JSON.stringify(status.error));
    assert.deepEqual(record.hash, { algo: 'sha512', value: hex('sha512', data) });
    assert.equal(status.glance?.os_hash_value, hex('sha512', data));
    assert.equal(recomputed.length, 0, 'hashed once, in the right algorithm from the start');
  });
});

test('a Glance configured with sha256: the first push computes the digest again, later pushes hash in sha256 at once', async () => {
  await withGlance({ hashingAlgorithm: 'sha256' }, async (glance, gw) => {
    const first = await upload(glance, gw);
    assert.equal(first.status.state, 'active', JSON.stringify(first.status.error));
    assert.deepEqual(first.record.hash, { algo: 'sha256', value: file.sha256 });
    assert.equal(first.recomputed.length, 1, 'sha512 first, then sha256 once Glance showed it');

    const second = await upload(glance, gw);
    assert.equal(second.status.state, 'active');
    assert.deepEqual(second.record.hash, { algo: 'sha256', value: file.sha256 });
    assert.equal(second.recomputed.length, 0, 'the algorithm was learned');
  });
});

test('a wrong sha256 multihash: failed (verification_failed), never active', async () => {
  await withGlance({ hashingAlgorithm: 'sha256' }, async (glance, gw) => {
    glance.failNextPuts({ kind: 'wrong-checksum' });
    const { status } = await upload(glance, gw);
    assert.equal(status.state, 'failed');
    assert.equal(status.error?.code, 'verification_failed');
    assert.match(status.error!.message, /sha256/);
  });
});

test('a FIPS Glance (no MD5 checksum): verified by the multihash alone', async () => {
  await withGlance({ md5: false }, async (glance, gw) => {
    const { status } = await upload(glance, gw);
    assert.equal(status.state, 'active', JSON.stringify(status.error));
    assert.equal(status.glance?.checksum, null);
  });
});

test('a Glance older than Rocky (no multihash): verified by its MD5 checksum', async () => {
  await withGlance({ hashingAlgorithm: null }, async (glance, gw) => {
    const ok = await upload(glance, gw);
    assert.equal(ok.status.state, 'active', JSON.stringify(ok.status.error));
    assert.deepEqual(ok.record.hash, { algo: 'md5', value: hex('md5', data) });

    glance.failNextPuts({ kind: 'wrong-checksum' });
    const bad = await upload(glance, gw);
    assert.equal(bad.status.state, 'failed');
    assert.equal(bad.status.error?.code, 'verification_failed');
  });
});

describe('holdsOurBytes', () => {
  const image = (fields: Partial<Image>): Image => ({
    id: 'i', name: null, status: 'active', disk_format: 'raw', container_format: 'bare', owner: null, visibility: 'private',
    size: 3, checksum: null, os_hash_algo: null, os_hash_value: null, ...fields,
  });
  const never = async () => assert.fail('no digest should be needed');

  test('a size that differs fails before any digest is computed', async () => {
    assert.match((await holdsOurBytes(image({ size: 4, os_hash_algo: 'sha512', os_hash_value: 'x' }), 3, never))!, /4 bytes/);
  });
  test('no hash at all is not proof', async () => {
    assert.equal(await holdsOurBytes(image({}), 3, never), 'Glance reports no hash to compare');
  });
  test('an algorithm this gateway cannot compute is not proof', async () => {
    assert.match((await holdsOurBytes(image({ os_hash_algo: 'whirlpool', os_hash_value: 'ab' }), 3, never))!, /whirlpool/);
  });
});

describe('hashStored', () => {
  // The test files stand in for stored uploads: each file's name is its upload id.
  const hashFile = (name: string, size: number, algo: string, stallMs?: number) =>
    hashStored(new LocalFiles(path.dirname(file.path)), path.basename(name), size, algo, { stallMs });

  test("computes Glance's algorithms under hashlib's names", async () => {
    for (const [glanceName, opensslName] of [['sha512', 'sha512'], ['sha3_256', 'sha3-256'], ['blake2b', 'blake2b512'], ['md5', 'md5']]) {
      const { algo, value } = await hashFile(file.path, data.length, glanceName!).result;
      assert.equal(algo, glanceName);
      assert.equal(value, hex(opensslName!, data), glanceName);
    }
  });
  test('follows a file that is still being written, and gives up when it stops growing', async () => {
    const growing = path.join(path.dirname(file.path), 'growing.raw');
    await fsp.writeFile(growing, data.subarray(0, MiB));
    const whole = hashFile(growing, data.length, 'sha512', 2_000);
    for (let at = MiB; at < data.length; at += MiB) {
      await new Promise((r) => setTimeout(r, 50));
      await fsp.appendFile(growing, data.subarray(at, at + MiB));
    }
    assert.equal((await whole.result).value, hex('sha512', data));

    const stalled = hashFile(growing, data.length + 1, 'sha512', 200);
    await assert.rejects(stalled.result, /stopped growing/);
  });
  test('stops when the push is given up', async () => {
    const waiting = hashFile(file.path, data.length + 1, 'sha512'); // waits for a byte that never comes
    await new Promise((r) => setTimeout(r, 100));
    waiting.abort();
    await assert.rejects(waiting.result, /given up/);
  });
});
