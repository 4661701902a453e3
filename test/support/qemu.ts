// Real disk images from Debian's qemu-img (package qemu-utils).
import { execFileSync } from 'node:child_process';

export function qemuImg(...args: string[]): void {
  try {
    execFileSync('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('qemu-img not found: install qemu-utils (apt-get install qemu-utils); these tests need real images');
    }
    throw err;
  }
}
