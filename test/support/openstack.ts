// The real Keystone and Glance of scripts/openstack-stack.sh, and the few calls the tests make to them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ROOT } from './gateway-process.js';

const run = promisify(execFile);
const SCRIPT = `${ROOT}/scripts/openstack-stack.sh`;

export type StackEnv = Record<
  | 'OS_AUTH_URL'
  | 'GLANCE_URL'
  | 'OS_USERNAME'
  | 'OS_PASSWORD'
  | 'OS_PROJECT_NAME'
  | 'ALT_USERNAME'
  | 'ALT_PASSWORD'
  | 'ALT_PROJECT_NAME'
  | 'SERVICE_USERNAME'
  | 'SERVICE_PASSWORD',
  string
>;

function parseExports(text: string): StackEnv {
  const env: Record<string, string> = {};
  for (const match of text.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) env[match[1]!] = match[2]!.replace(/^'(.*)'$/, '$1');
  return env as StackEnv;
}

/**
 * Use the stack if one is up (as .ci/run leaves it), else start it; `stop` stops it
 * only if this call started it.
 */
export async function ensureStack(): Promise<{ env: StackEnv; stop(): Promise<void> }> {
  const up = await run('bash', [SCRIPT, 'status']).then(
    () => true,
    () => false,
  );
  const { stdout } = await run('bash', [SCRIPT, up ? 'env' : 'start'], { maxBuffer: 1 << 20, timeout: 900_000 });
  return {
    env: parseExports(stdout),
    stop: async () => {
      if (!up) await run('bash', [SCRIPT, 'stop'], { timeout: 120_000 });
    },
  };
}

export interface Scoped {
  token: string;
  projectId: string;
  userId: string;
}

export async function issueToken(env: StackEnv, user: string, password: string, project: string): Promise<Scoped> {
  const res = await fetch(`${env.OS_AUTH_URL}/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password } } },
        scope: { project: { name: project, domain: { name: 'Default' } } },
      },
    }),
  });
  if (res.status !== 201) throw new Error(`Keystone refused ${user}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { token: { project: { id: string }; user: { id: string } } };
  return { token: res.headers.get('x-subject-token')!, projectId: body.token.project.id, userId: body.token.user.id };
}

async function keystone(env: StackEnv, method: string, path: string, token: string | undefined, body?: object): Promise<Response> {
  return fetch(`${env.OS_AUTH_URL}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { 'x-auth-token': token } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

/** A token of the demo user obtained from a new application credential (Keystone refuses trusts for those). */
export async function applicationCredentialToken(env: StackEnv, user: Scoped): Promise<Scoped> {
  const name = `gw-test-${Date.now()}-${Math.random().toString(16).slice(2)}`;
  const made = await keystone(env, 'POST', `/users/${user.userId}/application_credentials`, user.token, {
    // The member role only: what an uploader needs, whatever else Keystone lists in the token.
    application_credential: { name, roles: [{ name: 'member' }] },
  });
  if (made.status !== 201) throw new Error(`Keystone refused the application credential: ${made.status} ${await made.text()}`);
  const { id, secret } = ((await made.json()) as { application_credential: { id: string; secret: string } }).application_credential;
  const res = await keystone(env, 'POST', '/auth/tokens', undefined, {
    auth: { identity: { methods: ['application_credential'], application_credential: { id, secret } } },
  });
  if (res.status !== 201) throw new Error(`Keystone refused the application credential token: ${res.status}`);
  return { token: res.headers.get('x-subject-token')!, projectId: user.projectId, userId: user.userId };
}

/** The service user's unscoped token and id. */
async function serviceUser(env: StackEnv): Promise<{ token: string; id: string }> {
  const res = await keystone(env, 'POST', '/auth/tokens', undefined, {
    auth: { identity: { methods: ['password'], password: { user: { name: env.SERVICE_USERNAME, domain: { name: 'Default' }, password: env.SERVICE_PASSWORD } } } },
  });
  if (res.status !== 201) throw new Error(`Keystone refused the service user: ${res.status}`);
  const body = (await res.json()) as { token: { user: { id: string } } };
  return { token: res.headers.get('x-subject-token')!, id: body.token.user.id };
}

/** The ids of every trust whose trustee is the gateway's service user. */
export async function serviceTrusts(env: StackEnv): Promise<string[]> {
  const svc = await serviceUser(env);
  const res = await keystone(env, 'GET', `/OS-TRUST/trusts?trustee_user_id=${svc.id}`, svc.token);
  if (res.status !== 200) throw new Error(`Keystone answered ${res.status} for the trusts`);
  return ((await res.json()) as { trusts: { id: string }[] }).trusts.map((t) => t.id);
}

/** A trust from `user` to the service user, made without the gateway: what a crash between its two steps leaves. */
export async function createTrust(env: StackEnv, user: Scoped, expiresAt: Date): Promise<string> {
  const svc = await serviceUser(env);
  const trust = {
    trustor_user_id: user.userId,
    trustee_user_id: svc.id,
    project_id: user.projectId,
    roles: [{ name: 'member' }],
    impersonation: true,
    expires_at: expiresAt.toISOString(),
  };
  const res = await keystone(env, 'POST', '/OS-TRUST/trusts', user.token, { trust });
  if (res.status !== 201) throw new Error(`Keystone refused the trust: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { trust: { id: string } }).trust.id;
}

export async function revokeToken(env: StackEnv, token: string): Promise<void> {
  const res = await fetch(`${env.OS_AUTH_URL}/auth/tokens`, {
    method: 'DELETE',
    headers: { 'x-auth-token': token, 'x-subject-token': token },
  });
  if (res.status !== 204) throw new Error(`revocation answered ${res.status}`);
}

export interface GlanceImage {
  id: string;
  status: string;
  owner: string;
  size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  [key: string]: unknown;
}

export async function createImage(env: StackEnv, token: string, fields: Record<string, unknown> = {}): Promise<GlanceImage> {
  const res = await fetch(`${env.GLANCE_URL}/v2/images`, {
    method: 'POST',
    headers: { 'x-auth-token': token, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'test', disk_format: 'raw', container_format: 'bare', ...fields }),
  });
  if (res.status !== 201) throw new Error(`Glance refused the image: ${res.status} ${await res.text()}`);
  return (await res.json()) as GlanceImage;
}

export async function getImage(env: StackEnv, token: string, id: string): Promise<GlanceImage> {
  const res = await fetch(`${env.GLANCE_URL}/v2/images/${id}`, { headers: { 'x-auth-token': token } });
  if (res.status !== 200) throw new Error(`Glance answered ${res.status} for image ${id}`);
  return (await res.json()) as GlanceImage;
}

/** Replace image fields (JSON patch), as the owner may while the image is queued. */
export async function patchImage(env: StackEnv, token: string, id: string, fields: Record<string, unknown>): Promise<GlanceImage> {
  const ops = Object.entries(fields).map(([key, value]) => ({ op: 'replace', path: `/${key}`, value }));
  const res = await fetch(`${env.GLANCE_URL}/v2/images/${id}`, {
    method: 'PATCH',
    headers: { 'x-auth-token': token, 'content-type': 'application/openstack-images-v2.1-json-patch' },
    body: JSON.stringify(ops),
  });
  if (res.status !== 200) throw new Error(`Glance refused the patch: ${res.status} ${await res.text()}`);
  return (await res.json()) as GlanceImage;
}

/** Share an image with another project; the membership stays pending (the member never accepts). */
export async function shareImage(env: StackEnv, token: string, id: string, projectId: string): Promise<void> {
  const res = await fetch(`${env.GLANCE_URL}/v2/images/${id}/members`, {
    method: 'POST',
    headers: { 'x-auth-token': token, 'content-type': 'application/json' },
    body: JSON.stringify({ member: projectId }),
  });
  if (res.status !== 200) throw new Error(`Glance refused the member: ${res.status} ${await res.text()}`);
}

/** The HTTP status of GET image: 200 while it exists, 404 once deleted. */
export async function imageAnswer(env: StackEnv, token: string, id: string): Promise<number> {
  const res = await fetch(`${env.GLANCE_URL}/v2/images/${id}`, { headers: { 'x-auth-token': token } });
  await res.arrayBuffer();
  return res.status;
}
