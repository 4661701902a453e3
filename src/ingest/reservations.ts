import { InsufficientStorageError, QuotaExceededError } from '../errors.js';

export interface ReservationLimits {
  /** Unfinished uploads one project may hold at once. */
  uploadsPerProject: number;
  /** Declared bytes of one project's unfinished uploads. */
  bytesPerProject: number;
  /** An upload that stores nothing new for this long stops holding the space it has not used yet. */
  idleMs: number;
}

interface Entry {
  project: string;
  size: number;
  stored: number;
  /** When it last made useful progress, and how much it held then. */
  touchedAt: number;
  mark: number;
  /** Its missing bytes count against free space; false once it went idle. */
  held: boolean;
}

/** Progress that keeps a claim: 1 % of what the upload still needs, and at least this. */
const USEFUL_BYTES = 1 << 20;

/**
 * The storage promised to uploads, and each project's share: an upload counts from its creation
 * until its data is no longer held here (pushed and freed, or removed). Each check and its claim run in one synchronous
 * step after the free-space look-up, so parallel creations see each other's claims; totals are
 * kept as they change, so a creation costs the same however many uploads there are.
 */
export class Reservations {
  readonly #entries = new Map<string, Entry>();
  readonly #projects = new Map<string, { uploads: number; bytes: number }>();
  /** Bytes promised and not yet stored, over the held entries. */
  #owed = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly freeBytes: () => Promise<number>,
    private readonly limits: ReservationLimits,
  ) {
    this.#timer = setInterval(() => this.#lapseIdle(), Math.max(100, Math.min(limits.idleMs / 4, 60_000))).unref();
  }

  /** Claim `size` bytes for a new upload of `project`, or refuse (507 for space, 413 for the project's caps). */
  async claim(uploadId: string, project: string, size: number): Promise<void> {
    const free = await this.freeBytes();
    const spare = free - this.#owed;
    if (size > spare) {
      throw new InsufficientStorageError(`not enough storage: ${size} bytes declared, ${Math.max(0, spare)} available`);
    }
    const usage = this.#projects.get(project) ?? { uploads: 0, bytes: 0 };
    if (usage.uploads >= this.limits.uploadsPerProject) {
      throw new QuotaExceededError(`the project already has ${usage.uploads} unfinished uploads here (the limit)`);
    }
    if (usage.bytes + size > this.limits.bytesPerProject) {
      throw new QuotaExceededError(
        `the project's unfinished uploads would declare ${usage.bytes + size} bytes, over the ${this.limits.bytesPerProject} allowed`,
      );
    }
    this.#add(uploadId, { project, size, stored: 0, touchedAt: Date.now(), mark: 0, held: true });
  }

  /** An upload found at start: counted as it is, without a check (its bytes were promised before). */
  restore(uploadId: string, project: string, size: number, stored: number): void {
    if (!this.#entries.has(uploadId)) this.#add(uploadId, { project, size, stored, touchedAt: Date.now(), mark: stored, held: true });
  }

  /**
   * Bytes are about to arrive. An upload whose claim lapsed goes on only while the space it still
   * needs is free (else 507, its bytes kept); useful progress then claims it again.
   */
  async resume(uploadId: string): Promise<void> {
    const entry = this.#entries.get(uploadId);
    if (!entry || entry.held) return;
    const free = await this.freeBytes();
    if (entry.held || this.#entries.get(uploadId) !== entry) return; // claimed again, or released, meanwhile
    if (entry.size - entry.stored > free - this.#owed) {
      throw new InsufficientStorageError('storage is short: the bytes received so far are kept, resume later');
    }
  }

  /**
   * The upload now holds `stored` bytes. Only useful progress keeps (or wins back) its claim: a
   * byte now and then does not hold the space of a whole image.
   */
  progress(uploadId: string, stored: number): void {
    const entry = this.#entries.get(uploadId);
    if (!entry || stored <= entry.stored) return;
    if (entry.held) this.#owed -= Math.min(stored, entry.size) - entry.stored;
    entry.stored = Math.min(stored, entry.size);
    const useful = entry.stored - entry.mark >= Math.max(USEFUL_BYTES, (entry.size - entry.mark) / 100);
    if (!useful && entry.stored < entry.size) return;
    entry.touchedAt = Date.now();
    entry.mark = entry.stored;
    if (!entry.held) {
      entry.held = true;
      this.#owed += entry.size - entry.stored;
    }
  }

  /** Pushed (its data freed) or removed: it holds nothing any more. */
  release(uploadId: string): void {
    const entry = this.#entries.get(uploadId);
    if (!entry) return;
    this.#entries.delete(uploadId);
    if (entry.held) this.#owed -= entry.size - entry.stored;
    const usage = this.#projects.get(entry.project)!;
    usage.uploads--;
    usage.bytes -= entry.size;
    if (usage.uploads === 0) this.#projects.delete(entry.project);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #add(uploadId: string, entry: Entry): void {
    this.#entries.set(uploadId, entry);
    this.#owed += entry.size - entry.stored;
    const usage = this.#projects.get(entry.project) ?? { uploads: 0, bytes: 0 };
    usage.uploads++;
    usage.bytes += entry.size;
    this.#projects.set(entry.project, usage);
  }

  #lapseIdle(): void {
    const cutoff = Date.now() - this.limits.idleMs;
    for (const entry of this.#entries.values()) {
      if (!entry.held || entry.stored === entry.size || entry.touchedAt > cutoff) continue;
      entry.held = false;
      this.#owed -= entry.size - entry.stored;
    }
  }
}
