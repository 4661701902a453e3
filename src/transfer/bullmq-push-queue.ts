import { type ConnectionOptions, type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { PushQueue, PushWorker } from './push-queue.js';

export interface BullPushQueueOptions {
  connection: ConnectionOptions;
  /** The queue's name; every instance of one deployment uses the same. */
  name: string;
  prefix?: string;
  /** Pushes this instance runs at once. */
  concurrency: number;
  /** How long a job stays an instance's without renewal: a dead instance's push is run again after about this plus `stalledMs`. */
  lockMs?: number;
  stalledMs?: number;
  logger: Logger;
}

const SET_IF_EARLIER = `
local now = redis.call('GET', KEYS[1])
if (not now) or tonumber(ARGV[1]) < tonumber(now) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1`;

/**
 * The push queue on BullMQ, shared by every instance: one job per upload (its id is the job id,
 * its data empty: no token ever goes to Redis), retries as delayed jobs, `concurrency` per
 * instance. A job whose lock this instance fails to renew is aborted here at once, so that two
 * instances never push one image together.
 */
export class BullPushQueue implements PushQueue {
  readonly #queue: Queue;
  readonly #worker: Worker;
  readonly #running = new Map<string, AbortController>();
  readonly #prefix: string;
  #closed = false;

  constructor(
    private readonly options: BullPushQueueOptions,
    work: PushWorker,
  ) {
    const { connection, name, concurrency } = options;
    this.#prefix = options.prefix ?? 'gw-bull';
    this.#queue = new Queue(name, { connection, prefix: this.#prefix });
    this.#worker = new Worker(name, (job) => this.#process(job, work), {
      connection,
      prefix: this.#prefix,
      concurrency,
      lockDuration: options.lockMs ?? 30_000,
      stalledInterval: options.stalledMs ?? 15_000,
      // A push's own retries are the gateway's: BullMQ runs a stalled job again, however often.
      maxStalledCount: 1_000_000,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 0 },
    });
    this.#worker.on('lockRenewalFailed', (ids: string[]) => {
      for (const id of ids) {
        options.logger.warn({ uploadId: id }, 'push queue lock lost: the push stops here, another instance may run it');
        this.#running.get(id)?.abort();
      }
    });
    this.#worker.on('completed', (job) => void this.#runAgain(job.id!));
    this.#worker.on('failed', (job) => job && void this.#runAgain(job.id!));
    this.#worker.on('error', (err) => options.logger.warn({ err }, 'push queue: Redis trouble'));
    this.#queue.on('error', (err) => options.logger.warn({ err }, 'push queue: Redis trouble'));
  }

  async add(uploadId: string, options: { delayMs?: number } = {}): Promise<void> {
    if (this.#closed) return;
    const delay = Math.max(0, options.delayMs ?? 0);
    const job = await this.#queue.getJob(uploadId);
    if (job) {
      const state = await job.getState();
      if (state === 'delayed') {
        const due = job.timestamp + (job.opts.delay ?? 0);
        if (Date.now() + delay >= due) return;
        // A new job rather than changeDelay: adding wakes an idle worker, a changed delay may not.
        await job.remove().catch(() => undefined);
      }
      if (state === 'waiting' || state === 'prioritized' || state === 'waiting-children') return;
      if (state === 'active') {
        // Run once more after this run: the run ending may have looked at the upload before this request.
        await this.#client().then((redis) => (redis as unknown as AgainCommand).gwSetIfEarlier(this.#againKey(uploadId), String(Date.now() + delay), String(24 * 3600_000)));
        if ((await this.#queue.getJob(uploadId).then((j) => j?.getState())) === 'active') return;
      } else {
        await job.remove().catch(() => undefined); // a finished job not yet cleaned up
      }
    }
    await this.#queue.add('push', {}, { jobId: uploadId, delay, removeOnComplete: true, removeOnFail: true });
  }

  async remove(uploadId: string): Promise<void> {
    if (this.#closed) return;
    await (await this.#client()).del(this.#againKey(uploadId));
    const job = await this.#queue.getJob(uploadId);
    if (job && (await job.getState()) !== 'active') await job.remove().catch(() => undefined);
  }

  async depth(): Promise<number> {
    if (this.#closed) return 0;
    const counts = await this.#queue.getJobCounts('active', 'waiting', 'prioritized');
    const due = (await this.#queue.getJobs(['delayed'])).filter((job) => job.timestamp + (job.opts.delay ?? 0) <= Date.now());
    return (counts.active ?? 0) + (counts.waiting ?? 0) + (counts.prioritized ?? 0) + due.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#worker.close();
    await this.#queue.close();
  }

  async #process(job: Job, work: PushWorker): Promise<void> {
    const id = job.id!;
    const lost = new AbortController();
    this.#running.set(id, lost);
    try {
      await work(id, lost.signal);
    } finally {
      this.#running.delete(id);
    }
  }

  async #runAgain(uploadId: string): Promise<void> {
    const redis = await this.#client();
    const again = (await redis.call('GETDEL', this.#againKey(uploadId)).catch(() => null)) as string | null;
    if (again === null) return;
    await this.add(uploadId, { delayMs: Number(again) - Date.now() }).catch((err: unknown) =>
      this.options.logger.warn({ err, uploadId }, 'push not queued again'),
    );
  }

  async #client(): Promise<Redis> {
    const redis = (await this.#queue.client) as unknown as Redis;
    if (!(redis as unknown as Partial<AgainCommand>).gwSetIfEarlier) redis.defineCommand('gwSetIfEarlier', { numberOfKeys: 1, lua: SET_IF_EARLIER });
    return redis;
  }

  #againKey(uploadId: string): string {
    return `${this.#prefix}:${this.options.name}:again:${uploadId}`;
  }
}

interface AgainCommand {
  gwSetIfEarlier(key: string, due: string, ttl: string): Promise<number>;
}
