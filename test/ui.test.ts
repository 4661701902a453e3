// The browser page at `/`, in headless Chromium (Debian's `chromium`, driven by playwright-core),
// end to end against the real Keystone and Glance of scripts/openstack-stack.sh.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { glanceHashes, makeFile, MiB } from './support/files.js';
import { startGateway, tempDir, uploadIdsForImage } from './support/gateway.js';
import { ROOT } from './support/gateway-process.js';
import { getImage, type GlanceImage } from './support/openstack.js';
import { realStack } from './support/stacks.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const VIEWPORT = { width: 1000, height: 700 };

// The little of the DOM the page functions below touch (the tests compile without lib "dom").
// Functions, not strings: the page's CSP forbids eval.
declare const document: { getElementById(id: string): { textContent: string; value: number } };
declare const localStorage: { getItem(key: string): string | null; [key: string]: unknown };

const stack = realStack();
let browser: Browser;
let dir: string;

before(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM_PATH)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  dir = await tempDir('gw-ui-');
}, { timeout: 900_000 });

after(async () => {
  await browser?.close();
});

/** A fresh profile (empty localStorage) with the page open and its script running. */
async function openPage(query = ''): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  await page.goto(`${stack.gw.url}/${query}`);
  await page.waitForSelector('body[data-ready="1"]');
  return { context, page, problems };
}

async function fillForm(page: Page, file: string, name: string): Promise<void> {
  await page.fill('#token', stack.demo.token);
  await page.setInputFiles('#file', file);
  await page.fill('#name', name);
  await page.selectOption('#disk-format', 'raw');
}

/** Wait for the page to show a final state; the page's error line explains a failure. */
async function finalState(page: Page, timeout = 45_000): Promise<string> {
  await page.waitForFunction(() => ['active', 'failed'].includes(document.getElementById('state').textContent), null, { timeout });
  const state = (await page.textContent('#state'))!;
  if (state !== 'active') assert.fail(`page shows ${state}: ${await page.textContent('#error')}`);
  return state;
}

async function assertImage(imageId: string, file: string, size: number): Promise<GlanceImage> {
  const image = await getImage(stack.env, stack.demo.token, imageId);
  const expected = await glanceHashes(file);
  assert.equal(image.status, 'active');
  assert.equal(image.size, size);
  assert.equal(image.checksum, expected.md5);
  assert.equal(image.os_hash_value, expected.sha512);
  return image;
}

async function imagesNamed(name: string): Promise<GlanceImage[]> {
  const res = await fetch(`${stack.env.GLANCE_URL}/v2/images?name=${encodeURIComponent(name)}`, { headers: { 'x-auth-token': stack.demo.token } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { images: GlanceImage[] }).images;
}


test('the page and its scripts are served with a strict CSP; UI=0 turns the page off', { timeout: 90_000 }, async () => {
  const page = await fetch(`${stack.gw.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type')!, /^text\/html/);
  assert.match(page.headers.get('content-security-policy')!, /script-src 'self'/);
  const tus = await fetch(`${stack.gw.url}/ui/tus.min.js`);
  assert.equal(tus.status, 200);
  assert.match(tus.headers.get('content-type')!, /javascript/);
  assert.ok((await tus.text()).length > 10_000);

  const off = await startGateway({ GLANCE_URL: stack.env.GLANCE_URL, OS_AUTH_URL: stack.env.OS_AUTH_URL, UI: '0' });
  try {
    const res = await fetch(`${off.url}/`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_found');
  } finally {
    await off.close();
  }
});

test('upload a file from the page with a token: both bars fill, the page shows active and Glance has the bytes', { timeout: 90_000 }, async () => {
  const file = await makeFile(dir, 'debian-12.raw', 6 * MiB);
  const name = `debian-12 ${Date.now()}`;
  const { context, page, problems } = await openPage();
  try {
    await fillForm(page, file.path, name);
    await page.click('#start');
    await finalState(page);

    const imageId = (await page.textContent('#image-id'))!;
    const image = await assertImage(imageId, file.path, 6 * MiB);
    assert.equal(image.name, name);
    assert.equal(await page.textContent('#digest'), `${image.os_hash_algo} ${image.os_hash_value}`);
    // This gateway has no service user: the page said the push needed it open.
    assert.match((await page.textContent('#unattended'))!, /^no: keep this page open until the image is active \(the gateway has no service user/);
    assert.equal(await page.evaluate(() => document.getElementById('upload-bar').value), 1);
    assert.equal(await page.evaluate(() => document.getElementById('push-bar').value), 1);
    assert.equal(await page.isHidden('#error'), true);
    assert.deepEqual(problems, []);

    // test/output/ui.png on every run; the README's docs/ui.png when missing or with UPDATE_DOCS=1 (no churn in git).
    const shot = path.join(ROOT, 'test/output/ui.png');
    const docs = path.join(ROOT, 'docs/ui.png');
    await fsp.mkdir(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot });
    if (process.env.UPDATE_DOCS === '1' || !fs.existsSync(docs)) {
      await fsp.mkdir(path.dirname(docs), { recursive: true });
      await fsp.copyFile(shot, docs);
    }
  } finally {
    await context.close();
  }
});

test('a reload mid-upload: the same file resumes the same upload (HEAD, no second POST) and ends active', { timeout: 90_000 }, async () => {
  const size = 48 * MiB;
  const file = await makeFile(dir, 'resume.raw', size);
  const name = `ui resume ${Date.now()}`;
  const { context, page } = await openPage(`?chunkSize=${MiB}`);
  let release = () => {};
  const hold = new Promise<void>((resolve) => (release = resolve));
  try {
    // Let 6 PATCHes of 1 MiB through, then hold the next one: the reload catches the upload mid-way.
    let patches = 0;
    let sixDone = () => {};
    const held = new Promise<void>((resolve) => (sixDone = resolve));
    await page.route('**/files/*', async (route) => {
      if (route.request().method() === 'PATCH' && ++patches > 6) {
        sixDone();
        await hold;
        return route.abort().catch(() => {});
      }
      return route.continue();
    });
    await fillForm(page, file.path, name);
    await page.click('#start');
    await Promise.race([held, page.waitForSelector('#error:not([hidden])', { timeout: 30_000 }).then(async () => assert.fail(`${await page.textContent('#error')}`))]);
    const uploadPath = (await page.textContent('#upload-url'))!;
    assert.match(uploadPath, /^\/files\/[0-9a-f]{32}$/);

    await page.reload();
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    await page.waitForSelector('body[data-ready="1"]');
    const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')));
    assert.equal(stored.length, 1, 'tus-js-client keeps the upload URL in localStorage');

    const head = await fetch(`${stack.gw.url}${uploadPath}`, { method: 'HEAD', headers: { 'x-auth-token': stack.demo.token, 'tus-resumable': '1.0.0' } });
    assert.equal(head.status, 200);
    const offset = Number(head.headers.get('upload-offset'));
    assert.ok(offset > 0 && offset < size, `offset ${offset} before the second start`);

    const requests: string[] = [];
    page.on('request', (req) => {
      if (new URL(req.url()).pathname.startsWith('/files')) requests.push(`${req.method()} ${new URL(req.url()).pathname}`);
    });
    await fillForm(page, file.path, name);
    await page.waitForFunction(() => document.getElementById('file-note').textContent.includes('resumed'));
    await page.click('#start');
    await finalState(page, 60_000);

    assert.equal(await page.textContent('#upload-url'), uploadPath);
    assert.ok(!requests.some((r) => r.startsWith('POST')), `no new upload after the reload: ${requests.join(', ')}`);
    assert.equal(requests[0], `HEAD ${uploadPath}`);
    assert.match((await page.textContent('#file-note'))!, /resuming at \d/);
    const imageId = (await page.textContent('#image-id'))!;
    await assertImage(imageId, file.path, size);
    assert.equal((await imagesNamed(name)).length, 1, 'one image for the name');
    assert.deepEqual(await uploadIdsForImage(stack.gw.storageDir, imageId), [uploadPath.split('/').pop()]);
  } finally {
    release();
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    await context.close();
  }
});

test('the disk format guess reads the same magic bytes as the gateway', { timeout: 90_000 }, async () => {
  const at = (size: number, offset: number, magic: string) => {
    const buffer = Buffer.alloc(size, 0x5a);
    buffer.write(magic, offset, 'latin1');
    return buffer;
  };
  const cases: [string, Buffer][] = [
    ['qcow2', at(4096, 0, 'QFI\xfb')],
    ['vmdk', at(4096, 0, '# a comment\n# Disk DescriptorFile\n')],
    ['vhdx', at(4096, 0, 'vhdxfile')],
    ['vdi', at(4096, 0x40, '\x7f\x10\xda\xbe')],
    ['qed', at(4096, 0, 'QED\0')],
    ['iso', at(40960, 32769, 'CD001')],
    ['vhd', at(4096, 4096 - 512, 'conectix')], // fixed VHD: the footer only
    ['luks', at(4096, 0, 'LUKS\xba\xbe\x00\x01')], // only the gateway's inspection knows it: qemu would open it
    ['raw', at(4096, 0, 'nothing here')],
  ];
  const { context, page } = await openPage();
  try {
    for (const [format, buffer] of cases) {
      await page.setInputFiles('#file', { name: `guess.${format}`, mimeType: 'application/octet-stream', buffer });
      await page.waitForFunction((f) => document.getElementById('file-note').textContent.endsWith(`looks like ${f}`), format);
    }
  } finally {
    await context.close();
  }
});

test('the guess is what the module the gateway serves says', { timeout: 90_000 }, async () => {
  const { context, page } = await openPage();
  try {
    const standIn = 'export const HEAD_BYTES = 65536, TAIL_BYTES = 512;\nexport const detectFormat = () => "qed";\n';
    await page.route('**/ui/content/detect.js', (route) => route.fulfill({ contentType: 'text/javascript', body: standIn }));
    await page.reload();
    await page.waitForSelector('body[data-ready="1"]');
    await page.setInputFiles('#file', { name: 'guess.raw', mimeType: 'application/octet-stream', buffer: Buffer.alloc(4096) });
    await page.waitForFunction(() => document.getElementById('file-note').textContent.endsWith('looks like qed'));
  } finally {
    await context.close();
  }
});

test('errors from the gateway show as code: message', { timeout: 90_000 }, async () => {
  const file = await makeFile(dir, 'refused.raw', MiB);
  const { context, page } = await openPage();
  try {
    await fillForm(page, file.path, 'ui refused');
    await page.fill('#token', 'not-a-token');
    await page.click('#start');
    await page.waitForSelector('#error:not([hidden])');
    assert.match((await page.textContent('#error'))!, /^token_rejected: /);
    assert.equal(await page.isEnabled('#start'), true);
  } finally {
    await context.close();
  }
});

test('Keystone login from the page fills the token (wrong password: Keystone message)', { timeout: 90_000 }, async () => {
  const { context, page } = await openPage();
  try {
    // The browser posts to Keystone itself: the stack's Keystone allows it (`[cors] allowed_origin`).
    const preflight = await fetch(`${stack.env.OS_AUTH_URL}/auth/tokens`, {
      method: 'OPTIONS',
      headers: { origin: stack.gw.url, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.ok(preflight.headers.get('access-control-allow-origin'), 'Keystone answers CORS for the page');
    await page.click('#login summary');
    await page.fill('#auth-url', stack.env.OS_AUTH_URL);
    await page.fill('#user', stack.env.OS_USERNAME);
    await page.fill('#project', stack.env.OS_PROJECT_NAME);
    await page.fill('#password', 'wrong');
    await page.click('#login-button');
    await page.waitForSelector('#login-note.bad');
    assert.match((await page.textContent('#login-note'))!, /^401: /);

    await page.fill('#password', stack.env.OS_PASSWORD);
    await page.click('#login-button');
    await page.waitForFunction(() => document.getElementById('login-note').textContent.startsWith('Token issued'));
    const token = await page.inputValue('#token');
    const check = await fetch(`${stack.env.OS_AUTH_URL}/auth/tokens`, { headers: { 'x-auth-token': stack.demo.token, 'x-subject-token': token } });
    assert.equal(check.status, 200, 'Keystone validates the token the page got');
    assert.equal(await page.inputValue('#password'), '');
    const prefs = await page.evaluate(() => localStorage.getItem('glance-upload-page:keystone'));
    assert.ok(prefs && !prefs.includes(stack.env.OS_PASSWORD) && !prefs.includes(token), 'no secret in localStorage');
  } finally {
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    await context.close();
  }
});
