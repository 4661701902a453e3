// FileStateStores, each in a temporary directory of its own, for the suites.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileStateStore } from '../../src/state/file-state-store.js';
import { UploadEvents } from '../../src/state/upload-events.js';
import type { StateStoreFactory } from './state-store.js';

export function fileStateStores(kind: Pick<typeof FileStateStore, 'open'> = FileStateStore): {
  make: StateStoreFactory;
  dir(): Promise<string>;
  cleanup(): Promise<void>;
} {
  const dirs: string[] = [];
  const dir = async () => {
    const made = await fsp.mkdtemp(path.join(os.tmpdir(), 'gw-state-'));
    dirs.push(made);
    return made;
  };
  return {
    make: async ({ leaseMs }) => kind.open(await dir(), new UploadEvents(), { leaseMs }),
    dir,
    cleanup: async () => {
      await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
    },
  };
}
