// The fixtures test files share: a gateway in front of a fake Glance (which also answers Keystone's
// token validation), or in front of the real Keystone and Glance with a token of each of two projects;
// started before the file's tests and stopped after them.
import { after, before } from 'node:test';
import { FakeGlance } from './fake-glance.js';
import { startGateway, type TestGateway } from './gateway.js';
import { ensureStack, issueToken, type Scoped, type StackEnv } from './openstack.js';

/**
 * Top-level `before` hooks start as they are registered and run side by side: one of the file's
 * own that uses the stack awaits `ready` first.
 */
interface Started {
  readonly ready: Promise<void>;
}

/** The hook body, and `ready`, which takes on its outcome once it runs. */
function started(start: () => Promise<void>): { ready: Promise<void>; run: () => Promise<void> } {
  let settle!: (outcome: Promise<void>) => void;
  const ready = new Promise<void>((resolve) => (settle = resolve));
  ready.catch(() => undefined); // the hook itself reports a failure
  const run = () => {
    const outcome = start();
    settle(outcome);
    return outcome;
  };
  return { ready, run };
}

export interface FakeStack extends Started {
  readonly glance: FakeGlance;
  readonly gw: TestGateway;
}

/** Registers the file's before/after hooks; the fields are there once `before` has run. */
export function fakeStack(env: Record<string, string> = {}, glanceOptions: Parameters<typeof FakeGlance.start>[0] = {}): FakeStack {
  let glance: FakeGlance | undefined;
  let gw: TestGateway | undefined;
  const { ready, run } = started(async () => {
    glance = await FakeGlance.start(glanceOptions);
    gw = await startGateway({ GLANCE_URL: glance.url, ...env });
  });
  before(run);
  after(async () => {
    await gw?.close();
    await glance?.stop();
  });
  return {
    ready,
    get glance() {
      return glance!;
    },
    get gw() {
      return gw!;
    },
  };
}

export interface RealStack extends Started {
  readonly env: StackEnv;
  /** A member of the project `demo`, and one of `alt`. */
  readonly demo: Scoped;
  readonly alt: Scoped;
  readonly gw: TestGateway;
}

/** The real stack (reused when up, as CI leaves it), two project tokens, and a gateway in front. */
export function realStack(gatewayEnv: Record<string, string> = {}): RealStack {
  let stack: Awaited<ReturnType<typeof ensureStack>> | undefined;
  let fields: Omit<RealStack, 'env' | 'ready'> | undefined;
  const { ready, run } = started(async () => {
    stack = await ensureStack();
    const { env } = stack;
    const demo = await issueToken(env, env.OS_USERNAME, env.OS_PASSWORD, env.OS_PROJECT_NAME);
    const alt = await issueToken(env, env.ALT_USERNAME, env.ALT_PASSWORD, env.ALT_PROJECT_NAME);
    const gw = await startGateway({ GLANCE_URL: env.GLANCE_URL, OS_AUTH_URL: env.OS_AUTH_URL, ...gatewayEnv });
    fields = { demo, alt, gw };
  });
  before(run, { timeout: 900_000 });
  after(async () => {
    await fields?.gw.close();
    await stack?.stop();
  });
  return {
    ready,
    get env() {
      return stack!.env;
    },
    get demo() {
      return fields!.demo;
    },
    get alt() {
      return fields!.alt;
    },
    get gw() {
      return fields!.gw;
    },
  };
}
