// The real Keystone + Glance of scripts/openstack-stack.sh, and the few calls the bench makes.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ROOT } from './config.js';
import { log } from './log.js';
import { treeCpuSeconds } from './measure.js';

const run = promisify(execFile);
const SCRIPT = `${ROOT}/scripts/openstack-stack.sh`;
const TOKEN_MAX_AGE_MS = 20 * 60_000; // Keystone tokens live 1 h; a full bench takes longer

export interface Stack {
  env: Record<string, string>;
  glanceUrl: string;
  /** Keystone v3, where the gateway validates tokens. */
  authUrl: string;
  /** A project-scoped token, re-issued when it gets old. */
  token(): Promise<string>;
  createImage(name: string): Promise<string>;
  imageStatus(id: string): Promise<string>;
  deleteImage(id: string): Promise<void>;
  /** CPU seconds used so far by glance-api and its workers (0 when unknown). */
  glanceCpuSeconds(): Promise<number>;
  /** Delete every image this bench created and has not deleted yet. */
  deleteAll(): Promise<void>;
  stop(): Promise<void>;
}

function parseExports(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  return env;
}

export async function openStack(): Promise<Stack> {
  const up = await run('bash', [SCRIPT, 'status']).then(
    () => true,
    () => false,
  );
  log(up ? 'OpenStack stack already up: reusing it' : 'starting the OpenStack stack (~15 s)');
  const { stdout } = await run('bash', [SCRIPT, up ? 'env' : 'start'], { maxBuffer: 1 << 20, timeout: 900_000 });
  const env = parseExports(stdout);
  for (const k of ['OS_AUTH_URL', 'GLANCE_URL', 'OS_USERNAME', 'OS_PASSWORD', 'OS_PROJECT_NAME'])
    if (!env[k]) throw new Error(`openstack-stack.sh printed no ${k}`);
  const glanceUrl = env.GLANCE_URL!;
  let cached: { token: string; at: number } | undefined;
  const created = new Set<string>();

  const token = async (): Promise<string> => {
    if (cached && Date.now() - cached.at < TOKEN_MAX_AGE_MS) return cached.token;
    const res = await fetch(`${env.OS_AUTH_URL}/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: env.OS_USERNAME, domain: { name: 'Default' }, password: env.OS_PASSWORD } },
          },
          scope: { project: { name: env.OS_PROJECT_NAME, domain: { name: 'Default' } } },
        },
      }),
    });
    if (res.status !== 201) throw new Error(`Keystone refused the token: ${res.status} ${await res.text()}`);
    cached = { token: res.headers.get('x-subject-token')!, at: Date.now() };
    return cached.token;
  };

  const glance = async (method: string, path: string, body?: unknown): Promise<Response> =>
    fetch(`${glanceUrl}${path}`, {
      method,
      headers: { 'x-auth-token': await token(), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  const deleteImage = async (id: string): Promise<void> => {
    const res = await glance('DELETE', `/v2/images/${id}`);
    await res.arrayBuffer();
    if (res.status !== 204 && res.status !== 404) throw new Error(`Glance DELETE ${id}: ${res.status}`);
    created.delete(id);
  };

  return {
    env,
    glanceUrl,
    authUrl: env.OS_AUTH_URL!,
    token,
    async createImage(name) {
      const res = await glance('POST', '/v2/images', { name, disk_format: 'raw', container_format: 'bare' });
      if (res.status !== 201) throw new Error(`Glance refused the image: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      created.add(id);
      return id;
    },
    async imageStatus(id) {
      const res = await glance('GET', `/v2/images/${id}`);
      if (res.status !== 200) throw new Error(`Glance GET ${id}: ${res.status}`);
      return ((await res.json()) as { status: string }).status;
    },
    deleteImage,
    async glanceCpuSeconds() {
      const pid = Number(await readFile(`${env.STACK_DIR ?? `${ROOT}/.stack`}/glance.pid`, 'utf8').catch(() => ''));
      return pid ? treeCpuSeconds(pid) : 0;
    },
    async deleteAll() {
      for (const id of [...created]) await deleteImage(id).catch((err) => log(`could not delete image ${id}: ${err}`));
    },
    async stop() {
      if (up) return;
      log('stopping the OpenStack stack (this bench started it)');
      await run('bash', [SCRIPT, 'stop'], { timeout: 120_000 });
    },
  };
}
