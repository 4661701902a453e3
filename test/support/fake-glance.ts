// An in-process imitation of Glance v2 (as observed for 25.1.0) with fault injection, for the push tests.
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeImage {
  id: string;
  name: string;
  status: 'queued' | 'saving' | 'active' | 'killed' | 'deleted' | 'importing';
  disk_format: string | null;
  container_format: string | null;
  owner: string;
  visibility: string;
  size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  min_disk: number;
  min_ram: number;
  tags: string[];
  created_at: string;
  updated_at: string;
}

export type PutFault =
  | { kind: 'status'; status: number; message?: string; bytesPerSecond?: number; echoToken?: boolean } // optionally read slowly first; echoToken: the message ends with the caller's token
  | { kind: 'status-early'; status: number; message?: string }
  | { kind: 'reset'; afterBytes: number }
  | { kind: 'wrong-checksum' }
  | { kind: 'stall'; ms: number }
  | { kind: 'slow'; bytesPerSecond: number }; // read the body at this rate (a slow Glance store), noticing a client that dies

/** One PUT /file. `completed`: the whole body arrived; `status`: what was answered (0 when the socket was cut). */
export interface PutRecord {
  imageId: string;
  token: string | null;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  sha256: string;
  md5: string;
  sha512: string;
  /** The digest in the fake's `hashingAlgorithm` (its `os_hash_value`). */
  multihash: string;
  completed: boolean;
  status: number;
}

const DISK_FORMATS = ['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'];
const CONTAINER_FORMATS = ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'];
const VISIBILITIES = ['public', 'private', 'shared', 'community'];
const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict',
  413: 'Request Entity Too Large', 415: 'Unsupported Media Type', 500: 'Internal Server Error',
  502: 'Bad Gateway', 503: 'Service Unavailable',
};
const VERSIONS = { versions: [{ id: 'v2.16', status: 'CURRENT' }] };
const UNAUTHORIZED = 'The request you have made requires authentication.';

const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const first = (v: string | string[] | undefined): string | null => (Array.isArray(v) ? v[0] ?? null : v ?? null);

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { code: status, title: TITLES[status] ?? 'Error', message }, headers);
}

/** What GET /v2/images/{id} shows: the stored fields plus Glance's usual extras. */
function view(img: FakeImage): Record<string, unknown> {
  const links = { self: `/v2/images/${img.id}`, file: `/v2/images/${img.id}/file`, schema: '/v2/schemas/image' };
  return { ...img, ...links, protected: false, os_hidden: false, virtual_size: null };
}

async function readSmall(req: IncomingMessage, limit = 1024 * 1024): Promise<string> {
  let text = '';
  for await (const chunk of req as AsyncIterable<Buffer>) {
    text += chunk.toString('utf8');
    if (text.length > limit) throw new Error('body too large');
  }
  return text;
}

const schemaError = (v: unknown, field: string): string =>
  `Provided object does not match schema 'image': ${JSON.stringify(v)} is not valid for '${field}'`;

/** The POST /v2/images body as image fields, or the 400 message. Unknown keys are ignored. */
function parseCreate(body: Record<string, unknown>): Partial<FakeImage> | string {
  const { name, disk_format, container_format, visibility, min_disk, min_ram, tags } = body;
  const oneOf = (v: unknown, allowed: string[]): boolean => v == null || (typeof v === 'string' && allowed.includes(v));
  const count = (v: unknown): boolean => v === undefined || (Number.isInteger(v) && (v as number) >= 0);
  if (name != null && typeof name !== 'string') return schemaError(name, 'name');
  if (!oneOf(disk_format, DISK_FORMATS)) return schemaError(disk_format, 'disk_format');
  if (!oneOf(container_format, CONTAINER_FORMATS)) return schemaError(container_format, 'container_format');
  if (!oneOf(visibility, VISIBILITIES)) return schemaError(visibility, 'visibility');
  if (!count(min_disk)) return schemaError(min_disk, 'min_disk');
  if (!count(min_ram)) return schemaError(min_ram, 'min_ram');
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string'))) {
    return schemaError(tags, 'tags');
  }
  return {
    name: (name as string | null | undefined) ?? '',
    disk_format: (disk_format as string | null | undefined) ?? null,
    container_format: (container_format as string | null | undefined) ?? null, // Glance leaves it null
    visibility: (visibility as string | undefined) ?? 'shared', // Glance's default since Pike
    min_disk: (min_disk as number | undefined) ?? 0,
    min_ram: (min_ram as number | undefined) ?? 0,
    tags: (tags as string[] | undefined) ?? [],
  };
}

export class FakeGlance {
  readonly puts: PutRecord[] = [];
  readonly requests: { method: string; path: string; token: string | null }[] = [];
  private readonly images = new Map<string, FakeImage>();
  private readonly tokens: Map<string, string>;
  private readonly faults: PutFault[] = [];
  private readonly users = new Map<string, string>();
  /** Projects an owner shared each image with (Glance shows `shared` images to members, pending ones too). */
  private readonly members = new Map<string, Set<string>>();
  /** How long an image stays `saving` after its PUT's client went away (Glance notices late). */
  requeueDelayMs = 0;
  /** Awaited before answering GET /v2/images/{id}: holds an answer back to open a race. */
  beforeGet: ((id: string) => Promise<void>) | undefined;
  private readonly sockets = new Set<Socket>();
  private down = false;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    tokens: Record<string, string>,
    private readonly hashing: { algorithm: string | null; md5: boolean },
  ) {
    this.tokens = new Map(Object.entries(tokens));
    server.on('connection', (socket: Socket) => {
      if (this.down) return void socket.destroy();
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res));
  }

  /**
   * `hashingAlgorithm`: Glance's `hashing_algorithm` (hashlib's name), null for a Glance older than
   * Rocky (no multihash). `md5: false`: a FIPS deployment, which leaves `checksum` empty.
   */
  static async start(
    opts: { tokens?: Record<string, string>; hashingAlgorithm?: string | null; md5?: boolean } = {},
  ): Promise<FakeGlance> {
    const server = createServer();
    server.requestTimeout = 0; // Node's 300 s default would cut a slow 1 GiB push
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const tokens = opts.tokens ?? { 'token-a': 'project-a', 'token-b': 'project-b' };
    const hashing = { algorithm: opts.hashingAlgorithm === undefined ? 'sha512' : opts.hashingAlgorithm, md5: opts.md5 ?? true };
    return new FakeGlance(server, `http://127.0.0.1:${port}`, tokens, hashing);
  }

  /** A token of `project`; `user` names its Keystone user (by default one user per project). */
  addToken(token: string, project: string, user?: string): void {
    this.tokens.set(token, project);
    if (user) this.users.set(token, user);
  }

  revokeToken(token: string): void {
    this.tokens.delete(token);
  }

  createImage(project: string, fields: Partial<FakeImage> = {}): FakeImage {
    const t = now();
    const img: FakeImage = {
      id: randomUUID(), name: '', status: 'queued', disk_format: 'raw', container_format: 'bare', owner: project,
      visibility: 'private', size: null, checksum: null, os_hash_algo: null, os_hash_value: null,
      min_disk: 0, min_ram: 0, tags: [], created_at: t, updated_at: t, ...fields,
    };
    this.images.set(img.id, img);
    return structuredClone(img);
  }

  image(id: string): FakeImage | undefined {
    const img = this.images.get(id);
    return img && structuredClone(img);
  }

  setImage(id: string, patch: Partial<FakeImage>): void {
    const img = this.images.get(id);
    if (!img) throw new Error(`no image ${id}`);
    Object.assign(img, patch, { updated_at: now() });
  }

  /** Share an image with another project (a member, even a pending one, sees it). */
  addMember(imageId: string, project: string): void {
    const members = this.members.get(imageId) ?? new Set<string>();
    members.add(project);
    this.members.set(imageId, members);
  }

  failNextPuts(...faults: PutFault[]): void {
    this.faults.push(...faults);
  }

  /** Down also kills the connections already open: a dead Glance does not finish a PUT either. */
  setDown(down: boolean): void {
    this.down = down;
    if (down) for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    const token = first(req.headers['x-auth-token']);
    this.requests.push({ method: req.method ?? '', path, token });
    if (this.down) return void req.socket.destroy(); // a keep-alive socket that outlived setDown(true)
    this.route(req, res, path, token).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else sendError(res, 500, String(err));
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string, token: string | null): Promise<void> {
    const method = req.method ?? '';
    if (method === 'GET' && (path === '/' || path === '/versions')) return sendJson(res, 200, VERSIONS);
    if (method === 'GET' && path === '/v3/auth/tokens') return this.validate(res, token, first(req.headers['x-subject-token']));
    const match = /^\/v2\/images\/([^/]+)(\/file)?\/?$/.exec(path);
    const id = match?.[1];
    if (method === 'PUT' && id && match[2]) return this.put(req, res, id, token);
    const project = this.projectOf(token);
    if (project === undefined) return sendError(res, 401, UNAUTHORIZED);
    if (method === 'POST' && /^\/v2\/images\/?$/.test(path)) return this.create(req, res, project);
    if (method === 'GET' && id && !match[2]) {
      await this.beforeGet?.(id);
      const img = this.visible(id, project);
      return img ? sendJson(res, 200, view(img)) : sendError(res, 404, `No image found with ID ${id}`);
    }
    if ((method === 'DELETE' || method === 'PATCH') && id && !match[2]) {
      const img = this.visible(id, project);
      if (!img) return sendError(res, 404, `No image found with ID ${id}`);
      if (img.owner !== project) return sendError(res, 403, 'You are not permitted to modify this image.');
      if (method === 'DELETE') {
        this.setImage(id, { status: 'deleted' });
        return void res.writeHead(204).end();
      }
      return this.patch(req, res, img);
    }
    sendError(res, 404, 'The resource could not be found.');
  }

  private projectOf(token: string | null): string | undefined {
    return token === null ? undefined : this.tokens.get(token);
  }

  private visible(id: string, project: string): FakeImage | undefined {
    const img = this.images.get(id);
    if (!img || img.status === 'deleted') return undefined;
    const member = img.visibility === 'shared' && (this.members.get(id)?.has(project) ?? false);
    const shown = img.owner === project || img.visibility === 'public' || img.visibility === 'community' || member;
    return shown ? img : undefined;
  }

  /** Keystone's `GET /v3/auth/tokens`, as the gateway uses it: a token reads itself. */
  private validate(res: ServerResponse, token: string | null, subject: string | null): void {
    if (this.projectOf(token) === undefined) return sendError(res, 401, UNAUTHORIZED);
    const project = this.projectOf(subject);
    if (project === undefined) return sendError(res, 404, 'Could not find token.');
    const expires = new Date(Date.now() + 3600_000).toISOString();
    const user = this.users.get(subject!) ?? `user-of-${project}`;
    sendJson(res, 200, { token: { user: { id: user }, project: { id: project, name: project }, expires_at: expires, catalog: [] } });
  }

  /** `PATCH /v2/images/{id}` with JSON-patch `replace` ops on the fields the gateway cares about. */
  private async patch(req: IncomingMessage, res: ServerResponse, img: FakeImage): Promise<void> {
    const ops = JSON.parse(await readSmall(req)) as { op: string; path: string; value: unknown }[];
    const patch: Record<string, unknown> = {};
    for (const { path: field, value } of ops) patch[field.replace(/^\//, '')] = value;
    this.setImage(img.id, patch as Partial<FakeImage>);
    sendJson(res, 200, view(this.images.get(img.id)!));
  }

  private async create(req: IncomingMessage, res: ServerResponse, project: string): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(await readSmall(req));
    } catch {
      return sendError(res, 400, 'Malformed JSON in request body.');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return sendError(res, 400, 'Expected a JSON object.');
    }
    const fields = parseCreate(body as Record<string, unknown>);
    if (typeof fields === 'string') return sendError(res, 400, fields);
    const img = this.createImage(project, fields);
    sendJson(res, 201, view(img), { location: `${this.url}/v2/images/${img.id}` });
  }

  /** Every PUT /file consumes one fault; 'status' and 'status-early' answer before any check. */
  private async put(req: IncomingMessage, res: ServerResponse, id: string, token: string | null): Promise<void> {
    const record: PutRecord = {
      imageId: id, token, headers: { ...req.headers }, bytes: 0, sha256: '', md5: '', sha512: '', multihash: '',
      completed: false, status: 0,
    };
    this.puts.push(record);
    const answer = (status: number, message: string, headers?: Record<string, string>): void => {
      record.status = status;
      sendError(res, status, message, headers);
    };
    const fault = this.faults.shift();
    // Connection: close makes Node end the socket after the answer, leaving the body unread.
    if (fault?.kind === 'status-early') {
      return answer(fault.status, fault.message ?? 'Injected fault', { connection: 'close' });
    }
    if (fault?.kind === 'status') {
      const message = `${fault.message ?? 'Injected fault'}${fault.echoToken ? ` ${token}` : ''}`;
      if (await this.receive(req, record, Infinity, fault.bytesPerSecond)) answer(fault.status, message);
      return;
    }

    const project = this.projectOf(token);
    if (project === undefined) return answer(401, UNAUTHORIZED);
    const img = this.visible(id, project);
    if (!img) return answer(404, `No image found with ID ${id}`);
    const type = (first(req.headers['content-type']) ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/octet-stream') return answer(415, `Content type ${type || 'none'} not supported`);
    if (!img.disk_format || !img.container_format) {
      return answer(400, 'Properties disk_format, container_format must be set prior to saving data.');
    }
    if (img.status !== 'queued') {
      return answer(409, `Image status transition from ${img.status} to saving is not allowed`);
    }

    this.setImage(id, { status: 'saving' });
    if (fault?.kind === 'stall' && !(await this.stall(req, fault.ms))) return this.setImage(id, { status: 'queued' });
    const cutAt = fault?.kind === 'reset' ? fault.afterBytes : Infinity;
    const rate = fault?.kind === 'slow' ? fault.bytesPerSecond : Infinity;
    if (!(await this.receive(req, record, cutAt, rate))) return this.requeue(id); // client gone
    const declared = first(req.headers['x-openstack-image-size']);
    if (declared !== null && Number(declared) !== record.bytes) {
      this.setImage(id, { status: 'queued' });
      return answer(400, `Size mismatch: declared ${declared}, received ${record.bytes}`);
    }
    const bad = fault?.kind === 'wrong-checksum';
    const wrong = (hex: string): string => (bad ? createHash('sha256').update(`x${hex}`).digest('hex').slice(0, hex.length) : hex);
    const { algorithm, md5 } = this.hashing;
    this.setImage(id, {
      status: 'active', size: record.bytes, checksum: md5 ? wrong(record.md5) : null,
      os_hash_algo: algorithm, os_hash_value: algorithm ? wrong(record.multihash) : null,
    });
    record.status = 204;
    res.writeHead(204).end();
  }

  /** A PUT whose client went away: the image goes back to `queued`, after `requeueDelayMs`. */
  private requeue(id: string): void {
    if (this.requeueDelayMs <= 0) return this.setImage(id, { status: 'queued' });
    setTimeout(() => this.images.get(id)?.status === 'saving' && this.setImage(id, { status: 'queued' }), this.requeueDelayMs).unref();
  }

  /** Waits before reading the body; false if the client went away meanwhile (its body will never come). */
  private stall(req: IncomingMessage, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (stillThere: boolean) => (): void => {
        clearTimeout(timer);
        req.socket.off('close', gone);
        resolve(stillThere);
      };
      const gone = done(false);
      const timer = setTimeout(done(true), ms);
      if (req.socket.destroyed) return gone();
      req.socket.once('close', gone);
    });
  }

  private cut(req: IncomingMessage): false {
    req.socket.destroy();
    return false;
  }

  /** Streams the body through the hashes, never holding it; cuts the socket at `cutAt` bytes. True if it all came. */
  private async receive(req: IncomingMessage, record: PutRecord, cutAt: number, rate = Infinity): Promise<boolean> {
    const algorithm = (this.hashing.algorithm ?? 'sha512').replace('_', '-'); // OpenSSL's name for hashlib's sha3_*
    const hashes: [Hash, Hash, Hash, Hash] = [createHash('md5'), createHash('sha256'), createHash('sha512'), createHash(algorithm)];
    try {
      if (cutAt <= 0) return this.cut(req);
      for await (const chunk of req as AsyncIterable<Buffer>) {
        const part = chunk.subarray(0, cutAt - record.bytes);
        for (const h of hashes) h.update(part);
        record.bytes += part.length;
        if (record.bytes >= cutAt) return this.cut(req);
        if (rate !== Infinity) await new Promise((r) => setTimeout(r, (part.length / rate) * 1000));
      }
      record.completed = req.complete;
      return req.complete;
    } catch {
      return false; // the client went away mid-body
    } finally {
      [record.md5, record.sha256, record.sha512, record.multihash] = hashes.map((h) => h.digest('hex')) as [string, string, string, string];
    }
  }
}
