import { request } from 'undici';

/** No usable token: exit 2 with one line. Never carries the token itself. */
export class AuthError extends Error {}

/**
 * Where the token comes from. A Keystone-issued one can be fetched again when the
 * gateway or Glance calls it expired (uploads and pushes can outlast a token).
 */
export interface TokenSource {
  get(): Promise<string>;
  /** Drop the current token; true if the next get() fetches a new one. */
  renew(): boolean;
}

type Env = Record<string, string | undefined>;

export function tokenSource(flag: string | undefined, env: Env): TokenSource {
  const fixed = flag || env.OS_TOKEN;
  if (fixed) return { get: async () => fixed, renew: () => false };

  const body = keystoneAuthBody(env);
  const authUrl = env.OS_AUTH_URL;
  if (!authUrl || !body) {
    throw new AuthError(
      'no token: pass --token, set OS_TOKEN, or set OS_AUTH_URL with OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME ' +
        'or OS_APPLICATION_CREDENTIAL_ID/OS_APPLICATION_CREDENTIAL_SECRET',
    );
  }
  let current: Promise<string> | undefined;
  return {
    get: () => (current ??= issueToken(authUrl, body).catch((err: unknown) => {
      current = undefined;
      throw err;
    })),
    renew: () => {
      current = undefined;
      return true;
    },
  };
}

function keystoneAuthBody(env: Env): object | undefined {
  const credId = env.OS_APPLICATION_CREDENTIAL_ID;
  const credSecret = env.OS_APPLICATION_CREDENTIAL_SECRET;
  if (credId && credSecret) {
    // An application credential is already scoped to its project: no scope block.
    return {
      auth: {
        identity: { methods: ['application_credential'], application_credential: { id: credId, secret: credSecret } },
      },
    };
  }
  const { OS_USERNAME: name, OS_PASSWORD: password, OS_PROJECT_NAME: project, OS_PROJECT_ID: projectId } = env;
  if (!name || !password || !(project || projectId)) return undefined;
  const userDomain = env.OS_USER_DOMAIN_NAME || 'Default';
  const projectDomain = env.OS_PROJECT_DOMAIN_NAME || 'Default';
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { name, domain: { name: userDomain }, password } } },
      scope: { project: projectId ? { id: projectId } : { name: project, domain: { name: projectDomain } } },
    },
  };
}

/** `OS_AUTH_URL` is written both with and without the `/v3` suffix in the wild. */
export function tokensUrl(authUrl: string): string {
  const root = authUrl.replace(/\/+$/, '');
  return `${/\/v3$/.test(root) ? root : `${root}/v3`}/auth/tokens`;
}

async function issueToken(authUrl: string, body: object): Promise<string> {
  const url = tokensUrl(authUrl);
  let res;
  try {
    res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
  } catch (err) {
    throw new AuthError(`cannot reach Keystone at ${url}: ${(err as Error).message}`);
  }
  const text = await res.body.text().catch(() => '');
  if (res.statusCode !== 201) {
    const detail = keystoneMessage(text);
    throw new AuthError(`Keystone refused the credentials (${res.statusCode}${detail ? `: ${detail}` : ''})`);
  }
  const token = res.headers['x-subject-token'];
  if (typeof token !== 'string' || !token) throw new AuthError('Keystone answered without an X-Subject-Token header');
  return token;
}

function keystoneMessage(text: string): string | undefined {
  try {
    const msg = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    return typeof msg === 'string' ? msg.split('\n')[0] : undefined;
  } catch {
    return undefined;
  }
}
