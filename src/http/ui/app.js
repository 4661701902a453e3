// The gateway's upload page: tus upload to /files/, then follow the push to Glance on /files/{id}/events.
// Plain browser JavaScript, no build step. The token lives in this page's memory only.
// The disk format guess is the gateway's own content inspection, served from its sources.
import { detectFormat, HEAD_BYTES, TAIL_BYTES } from './content/detect.js';

(() => {
  const $ = (id) => document.getElementById(id);
  const MiB = 1024 * 1024;
  const params = new URLSearchParams(location.search);
  const chunkSize = Number(params.get('chunkSize')) > 0 ? Number(params.get('chunkSize')) : 64 * MiB;
  const endpoint = new URL('files/', location.href).href;
  const PREFS = 'glance-upload-page:keystone'; // Keystone URL, user, project, domain: never the password or a token

  let upload = null; // the running tus.Upload
  let watch = null; // { url, abort } of the event stream being read
  let guessed = null; // { file, format } of the last guess

  // ---- small helpers ------------------------------------------------------------------------

  const setText = (id, text) => ($(id).textContent = text);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const token = () => $('token').value.trim();

  function size(bytes) {
    if (bytes == null) return '?';
    if (bytes < 1024) return `${bytes} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) value /= 1024, unit++;
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  function showError(message) {
    const el = $('error');
    el.textContent = message;
    el.hidden = !message;
  }

  /** `code: message` from the gateway's `{"error":{"code","message"}}` (or Keystone's) body. */
  function describeBody(status, text) {
    try {
      const { error } = JSON.parse(text);
      if (error?.message) return `${error.code ?? status}: ${error.message}`;
    } catch {
      /* not JSON */
    }
    return `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`;
  }

  function describeTusError(err) {
    const res = err.originalResponse;
    if (res) return describeBody(res.getStatus(), res.getBody());
    return `The gateway could not be reached (${err.message || err}).`;
  }

  function busy(running) {
    $('start').disabled = running;
    $('pause').disabled = !running;
    $('file').disabled = running;
  }

  // ---- disk format guess: the gateway's detectFormat, on the file's head and tail -------------

  async function guessFormat(file) {
    const head = new Uint8Array(await file.slice(0, HEAD_BYTES).arrayBuffer());
    const tail = new Uint8Array(await file.slice(Math.max(0, file.size - TAIL_BYTES)).arrayBuffer());
    return detectFormat(head, tail);
  }

  async function fileChosen() {
    const file = $('file').files[0];
    showError('');
    setText('file-note', '');
    if (!file) return;
    const name = $('name');
    if (!name.value || name.dataset.auto === '1') {
      name.value = file.name.replace(/\.[^.]+$/, '') || file.name;
      name.dataset.auto = '1';
    }
    const format = await guessFormat(file).catch(() => 'raw');
    guessed = { file, format };
    const notes = [`${size(file.size)}, looks like ${format}`];
    const previous = await tusUpload(file).findPreviousUploads().catch(() => []);
    if (previous.length) notes.push('an earlier upload of this file will be resumed');
    setText('file-note', notes.join('; '));
  }

  // ---- the tus upload ---------------------------------------------------------------------------

  function tusUpload(file, metadata = {}) {
    const created = new tus.Upload(file, {
      endpoint,
      chunkSize,
      metadata,
      headers: { 'X-Auth-Token': token() }, // read once per upload; a new token needs Upload again
      retryDelays: [0, 1000, 3000, 5000, 10000],
      removeFingerprintOnSuccess: true,
      onUploadUrlAvailable() {
        setText('upload-url', new URL(created.url).pathname);
        void follow(created.url);
      },
      onProgress(sent, total) {
        $('upload-bar').value = total ? sent / total : 0;
        setText('upload-text', `${size(sent)} of ${size(total)}`);
      },
      onSuccess() {
        setText('upload-text', `${size(file.size)}, complete`);
        busy(false);
      },
      onError(err) {
        showError(describeTusError(err));
        busy(false);
      },
    });
    return created;
  }

  async function start(event) {
    event.preventDefault();
    showError('');
    const file = $('file').files[0];
    if (!token()) return showError('Enter a Keystone token, or log in with Keystone.');
    if (!file) return showError('Choose a file.');
    const format = $('disk-format').value || (guessed?.file === file ? guessed.format : await guessFormat(file));
    const name = $('name').value.trim() || file.name;

    busy(true);
    $('retry-push').hidden = true;
    upload = tusUpload(file, { name, disk_format: format, filename: file.name });
    const previous = await upload.findPreviousUploads().catch(() => []);
    if (previous.length) {
      // tus-js-client forgets an upload whose HEAD gets any 4xx and creates a new one (a new
      // image): a rejected token must not cost the upload, so ask first.
      const head = await fetch(previous[0].uploadUrl, {
        method: 'HEAD',
        headers: { 'X-Auth-Token': token(), 'Tus-Resumable': '1.0.0' },
        cache: 'no-store',
      }).catch(() => null);
      if (head?.status === 401) {
        busy(false);
        return showError('token_rejected: Keystone refused the token; enter a fresh one to resume.');
      }
      if (head?.ok) setText('file-note', `resuming at ${size(Number(head.headers.get('Upload-Offset')))}`);
      upload.resumeFromPreviousUpload(previous[0]);
    }
    upload.start();
  }

  function pause() {
    upload?.abort();
    busy(false);
    setText('upload-text', `${$('upload-text').textContent}, paused`);
  }

  // ---- the push to Glance: GET /files/{id}/events, read with fetch (EventSource sends no token) --

  async function* serverSentEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer = (buffer + value).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (!line || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = text;
          else if (field === 'data') data.push(text);
        }
        if (data.length) yield { event, data: data.join('\n') };
      }
    }
  }

  /** Follow the upload's status until it is `active` or `failed`; reconnects with backoff. */
  async function follow(url) {
    if (watch?.url === url) return;
    watch?.abort.abort();
    const abort = new AbortController();
    watch = { url, abort };
    for (let delay = 1000; !abort.signal.aborted; delay = Math.min(delay * 2, 15000)) {
      try {
        const res = await fetch(`${url}/events`, {
          headers: { 'X-Auth-Token': token(), Accept: 'text/event-stream' },
          cache: 'no-store',
          signal: abort.signal,
        });
        if (!res.ok) {
          showError(describeBody(res.status, await res.text()));
          if (res.status >= 400 && res.status < 500) return;
        } else {
          for await (const { event, data } of serverSentEvents(res.body)) {
            if (event === 'removed') return showError('The gateway removed this upload.');
            const status = JSON.parse(data);
            showStatus(status);
            delay = 1000;
            if (status.state === 'active' || status.state === 'failed') return abort.abort();
          }
        }
      } catch {
        if (abort.signal.aborted) return;
      }
      await sleep(delay);
    }
  }

  function showStatus(s) {
    setText('image-id', s.imageId);
    setText('state', s.state);
    $('state').dataset.state = s.state;
    const done = s.state === 'active';
    $('push-bar').value = done ? 1 : s.size ? s.pushed / s.size : 0;
    let text = done ? `${size(s.size)}, verified` : `${size(s.pushed)} of ${size(s.size)}`;
    if (s.state === 'retrying' && s.nextAttemptAt) text += `, retry at ${new Date(s.nextAttemptAt).toLocaleTimeString()}`;
    if (s.state === 'awaiting_token') text += ', waiting for a fresh token: enter one and press Push again';
    setText('push-text', text);
    if (!done) {
      setText('unattended', s.unattended ? 'yes: the push finishes even if this page is closed' : `no: keep this page open until the image is active (${s.unattendedReason})`);
    }
    const g = s.glance;
    if (g?.os_hash_value) setText('digest', `${g.os_hash_algo} ${g.os_hash_value}`);
    else if (g?.checksum) setText('digest', `md5 ${g.checksum}`);
    if (s.error) showError(`${s.error.code}: ${s.error.message}`);
    $('retry-push').hidden = !(s.state === 'failed' || s.state === 'awaiting_token');
  }

  async function retryPush() {
    const url = watch?.url ?? upload?.url;
    if (!url || !token()) return showError('Enter a Keystone token first.');
    showError('');
    const res = await fetch(`${url}/push`, { method: 'POST', headers: { 'X-Auth-Token': token() } }).catch(() => null);
    if (!res) return showError('The gateway could not be reached.');
    if (!res.ok) return showError(describeBody(res.status, await res.text()));
    $('retry-push').hidden = true;
    watch = null;
    void follow(url);
  }

  // ---- Keystone login: the browser asks Keystone itself (Keystone must allow this origin) -------

  function loadPrefs() {
    try {
      const prefs = JSON.parse(localStorage.getItem(PREFS) ?? '{}');
      for (const id of ['auth-url', 'user', 'project', 'domain']) if (prefs[id]) $(id).value = prefs[id];
    } catch {
      /* nothing stored */
    }
  }

  async function login() {
    const note = (text, bad = false) => {
      setText('login-note', text);
      $('login-note').classList.toggle('bad', bad);
    };
    let authUrl = $('auth-url').value.trim().replace(/\/+$/, '');
    if (!authUrl) return note('Enter the Keystone URL.', true);
    if (!/\/v3$/.test(authUrl)) authUrl += '/v3';
    const domain = $('domain').value.trim() || 'Default';
    const body = {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: $('user').value.trim(), domain: { name: domain }, password: $('password').value } },
        },
        scope: { project: { name: $('project').value.trim(), domain: { name: domain } } },
      },
    };
    note('asking Keystone…');
    let res;
    try {
      res = await fetch(`${authUrl}/auth/tokens`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch {
      return note(`Keystone did not answer this page: check the URL, and that Keystone allows the origin ${location.origin} ([cors] allowed_origin).`, true);
    }
    const text = await res.text();
    if (res.status !== 201) return note(describeBody(res.status, text), true);
    const issued = res.headers.get('X-Subject-Token');
    if (!issued) return note('Keystone did not show the token to this page ([cors] expose_headers must list X-Subject-Token).', true);
    $('token').value = issued;
    $('password').value = '';
    const prefs = { 'auth-url': authUrl, user: $('user').value.trim(), project: $('project').value.trim(), domain };
    localStorage.setItem(PREFS, JSON.stringify(prefs));
    let scope = '';
    try {
      const { token: t } = JSON.parse(text);
      scope = ` for project ${t.project.name}, until ${new Date(t.expires_at).toLocaleString()}`;
    } catch {
      /* the token is what matters */
    }
    note(`Token issued${scope}.`);
  }

  // ---- wiring -----------------------------------------------------------------------------------

  $('upload-form').addEventListener('submit', (e) => void start(e));
  $('pause').addEventListener('click', pause);
  $('retry-push').addEventListener('click', () => void retryPush());
  $('login-button').addEventListener('click', () => void login());
  $('file').addEventListener('change', () => void fileChosen());
  $('name').addEventListener('input', () => ($('name').dataset.auto = '0'));
  loadPrefs();
  if (!window.tus || !tus.isSupported) showError('This browser cannot run the upload (tus-js-client is not supported here).');
  document.body.dataset.ready = '1';
})();
