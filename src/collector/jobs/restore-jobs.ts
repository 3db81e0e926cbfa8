import { createHash, randomUUID } from 'node:crypto';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError, fromSystemError, isRewindError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { RewindMetrics } from '../../metrics/rewind-metrics.js';
import type { RestoreChunk } from '../store/image-emitter.js';
import type { Point, VolumeStore } from '../store/volume-store.js';
import { checkRestoreTarget, prepareRestoreDir } from './restore-path.js';

export type RestoreJobState = 'running' | 'done' | 'failed' | 'cancelled';

/** What GET /v1/restores/:id shows. Times are ns since the epoch. */
export interface RestoreJobView {
  id: string;
  volume: string;
  /** The point as asked (`mark:NAME`, an instant, `seq:N`). */
  at: string;
  /** What it resolved to when the job started: the image is exactly this seq's state. */
  seq: bigint;
  time: bigint;
  mark?: string;
  path: string;
  state: RestoreJobState;
  bytesDone: bigint;
  bytesTotal: bigint;
  /** sha256 (hex) of the whole image as written, once done. */
  sha256?: string;
  error?: { code: ErrorCode; message: string };
  startedNs: bigint;
  finishedNs?: bigint;
}

export interface RestoreJobsOptions {
  /** --restore-dir (created if missing, resolved through symlinks); undefined: restore jobs are refused (UNSUPPORTED). */
  restoreDir: string | undefined;
  metrics?: RewindMetrics;
  log: Logger;
  /** Restores running at once; more are refused with UNAVAILABLE (default 2: each reads the journal hard). */
  maxRunning?: number;
  /** Finished jobs kept for GET (default 100); the oldest are forgotten first. */
  keepFinished?: number;
}

interface Job {
  view: RestoreJobView;
  abort: AbortController;
  done: Promise<void>;
}

/** Zeros hashed for holes, at most this many bytes per update. */
const ZERO_BLOCK = Buffer.alloc(1024 * 1024);
/** Zero bytes hashed between two turns of the event loop (16 MiB: ~25 ms of SHA-256 here, 650 MB/s). */
const YIELD_EVERY = 16 * 1024 * 1024;

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/**
 * Restore jobs: write the image of a point to a file on the collector host, with progress
 * and the image's sha256. The file appears at its path only once whole (written as
 * `.partial`, fsynced, then hard-linked: a link never replaces a file that appeared
 * meanwhile). Holes stay holes. Jobs live in memory: a collector restart forgets them and a
 * restore it cut short leaves only its `.partial`.
 */
export class RestoreJobs {
  private readonly jobs = new Map<string, Job>();
  private readonly maxRunning: number;
  private readonly keepFinished: number;
  private root: Promise<string> | undefined;

  constructor(private readonly o: RestoreJobsOptions) {
    this.maxRunning = o.maxRunning ?? 2;
    this.keepFinished = o.keepFinished ?? 100;
  }

  get restoreDir(): string | undefined {
    return this.o.restoreDir;
  }

  /**
   * Check everything a caller can get wrong first (point, path, capacity), so a refusal is
   * an error reply and not a failed job; then start writing and return the running job.
   */
  async start(vol: VolumeStore, at: Point, atText: string, requestedPath: unknown): Promise<RestoreJobView> {
    const r = vol.resolve(at);
    const target = await checkRestoreTarget(await this.realRoot(), requestedPath);
    const running = [...this.jobs.values()].filter((j) => j.view.state === 'running').length;
    if (running >= this.maxRunning) {
      throw new RewindError(ErrorCodes.UNAVAILABLE, `${running} restores are running, the most this collector runs at once; retry when one has finished (GET /v1/restores)`, { details: { running, maxRunning: this.maxRunning } });
    }
    let fh: FileHandle;
    try {
      fh = await fsp.open(target.partial, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new RewindError(ErrorCodes.ALREADY_EXISTS, `${target.partial} is being written by another restore; pick another file name`, { details: { path: target.file, reason: 'target-exists' } });
      }
      throw fromSystemError(err, `restore job: create ${target.partial}`);
    }
    const view: RestoreJobView = {
      id: randomUUID(), volume: vol.name, at: atText, seq: r.seq, time: r.time, ...('mark' in at ? { mark: at.mark } : {}),
      path: target.file, state: 'running', bytesDone: 0n, bytesTotal: vol.size, startedNs: nowNs(),
    };
    const abort = new AbortController();
    const job: Job = { view, abort, done: Promise.resolve() };
    job.done = this.run(vol, job, fh, target);
    this.jobs.set(view.id, job);
    this.forgetOld();
    return { ...view };
  }

  private async realRoot(): Promise<string | undefined> {
    if (this.o.restoreDir === undefined) return undefined;
    this.root ??= prepareRestoreDir(this.o.restoreDir);
    try {
      return await this.root;
    } catch (err) {
      this.root = undefined; // not cached: the operator may fix the directory
      throw err;
    }
  }

  private async run(vol: VolumeStore, job: Job, fh: FileHandle, target: { file: string; partial: string }): Promise<void> {
    const v = job.view;
    const hash = createHash('sha256');
    const t0 = process.hrtime.bigint();
    let next = 0n;
    let sinceYield = 0;
    const checkCancelled = (): void => {
      if (job.abort.signal.aborted) throw new RewindError(ErrorCodes.CLOSED, 'restore job cancelled');
    };
    /**
     * Holes cost no I/O but must be hashed, and an emitter's zero chunks resolve as
     * microtasks: without a turn of the event loop now and then, a large sparse volume would
     * hold up every other request (and gRPC ingest) while its zeros are hashed.
     */
    const hashZeros = async (upTo: bigint): Promise<void> => {
      while (next < upTo) {
        const n = upTo - next < BigInt(ZERO_BLOCK.length) ? Number(upTo - next) : ZERO_BLOCK.length;
        hash.update(ZERO_BLOCK.subarray(0, n));
        next += BigInt(n);
        v.bytesDone = next;
        sinceYield += n;
        if (sinceYield >= YIELD_EVERY) {
          sinceYield = 0;
          await new Promise((r) => setImmediate(r));
          checkCancelled();
        }
      }
    };
    const sink = async (c: RestoreChunk): Promise<void> => {
      checkCancelled();
      await hashZeros(c.offset); // defensive: a gap the emitter skipped reads as zeros
      if (c.data) {
        const data = c.data.subarray(0, c.length);
        await fh.write(data, 0, data.length, Number(c.offset));
        hash.update(data);
        next += BigInt(c.length);
      } else {
        await hashZeros(c.offset + BigInt(c.length)); // a hole: the truncated file already reads as zeros there
      }
      v.bytesDone = next;
    };
    try {
      await fh.truncate(Number(vol.size));
      // By seq: exactly the state resolved when the job was accepted.
      await vol.restore({ seq: v.seq }, sink);
      await hashZeros(vol.size);
      checkCancelled();
      v.bytesDone = vol.size;
      await fh.sync();
      await fh.close();
      await fsp.link(target.partial, target.file);
      await fsp.rm(target.partial, { force: true });
      await syncDir(path.dirname(target.file));
      v.sha256 = hash.digest('hex');
      v.state = 'done';
      this.o.metrics?.restoreDuration.observe({ volume: vol.name, kind: 'file' }, Number(process.hrtime.bigint() - t0) / 1e9);
      this.o.metrics?.restoreBytes.inc({ volume: vol.name }, Number(vol.size));
      this.o.log.info('restore job done', { id: v.id, volume: v.volume, seq: v.seq, path: v.path });
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fsp.rm(target.partial, { force: true }).catch(() => undefined);
      const cancelled = job.abort.signal.aborted;
      const re = isRewindError(err) ? err : fromSystemError(err, `restore job ${v.id}: write ${target.file}`);
      v.state = cancelled ? 'cancelled' : 'failed';
      v.error = cancelled ? { code: ErrorCodes.CLOSED, message: 'cancelled (DELETE /v1/restores/:id); the partial file was removed' } : { code: re.code, message: re.message };
      if (!cancelled) this.o.log.warn('restore job failed', { id: v.id, volume: v.volume, code: re.code, message: re.message });
    } finally {
      v.finishedNs = nowNs();
    }
  }

  private forgetOld(): void {
    const finished = [...this.jobs.values()].filter((j) => j.view.state !== 'running');
    for (const j of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) this.jobs.delete(j.view.id);
  }

  get(id: string): RestoreJobView {
    const j = this.jobs.get(id);
    if (!j) throw new RewindError(ErrorCodes.NOT_FOUND, `no restore job "${id}" (jobs are kept in memory until the collector restarts; list them with GET /v1/restores)`, { details: { id } });
    return { ...j.view, ...(j.view.error ? { error: { ...j.view.error } } : {}) };
  }

  list(): RestoreJobView[] {
    return [...this.jobs.keys()].map((id) => this.get(id));
  }

  /** Cancel a running job (its partial file is removed); a finished one is left as it is. */
  async cancel(id: string): Promise<RestoreJobView> {
    const j = this.jobs.get(id);
    if (!j) return this.get(id);
    if (j.view.state === 'running') {
      j.abort.abort();
      await j.done;
    }
    return this.get(id);
  }

  /** Wait for a job to finish (tests; the HTTP API polls instead). */
  async settled(id: string): Promise<RestoreJobView> {
    await this.jobs.get(id)?.done;
    return this.get(id);
  }

  /** Cancel what still runs (the collector is stopping). */
  async close(): Promise<void> {
    await Promise.all([...this.jobs.keys()].map((id) => this.cancel(id)));
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await fsp.open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
