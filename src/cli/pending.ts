import fsp from 'node:fs/promises';
import path from 'node:path';

/**
 * Uploads whose bytes are all on the gateway but whose push we have not yet seen end.
 * tus-js-client forgets an upload once its last byte is sent (removeFingerprintOnSuccess),
 * so without this a run stopped during the push would upload the file again. Holds no token.
 */
export class PendingPushes {
  constructor(private readonly file: string) {}

  /** Next to tus-js-client's own uploads.json. */
  static beside(urlStorageFile: string): PendingPushes {
    return new PendingPushes(path.join(path.dirname(urlStorageFile), 'pushes.json'));
  }

  /** `key`: the resume key's fingerprint, as tus-js-client's state uses it. */
  async get(key: string): Promise<string | undefined> {
    return (await this.#read())[key];
  }

  async set(key: string, uploadUrl: string): Promise<void> {
    const all = await this.#read();
    all[key] = uploadUrl;
    await this.#write(all);
  }

  async delete(...keys: string[]): Promise<void> {
    const all = await this.#read();
    if (!keys.some((key) => key in all)) return;
    for (const key of keys) delete all[key];
    await this.#write(all);
  }

  /** Every entry whose key starts with `prefix` (one target, any version of the file). */
  async withPrefix(prefix: string): Promise<[key: string, uploadUrl: string][]> {
    return Object.entries(await this.#read()).filter(([key]) => key.startsWith(prefix));
  }

  async #read(): Promise<Record<string, string>> {
    try {
      const parsed: unknown = JSON.parse(await fsp.readFile(this.file, 'utf8'));
      return parsed && typeof parsed === 'object' ? (parsed as Record<string, string>) : {};
    } catch {
      return {}; // missing or torn: at worst the file is uploaded again
    }
  }

  async #write(all: Record<string, string>): Promise<void> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(all), { mode: 0o600 });
    await fsp.rename(tmp, this.file);
  }
}
