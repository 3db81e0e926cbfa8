import { ErrorCodes, RewindError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { DurabilityMode } from './journal-filter.js';

/**
 * What a flush-sync FLUSH/FUA (or a sync-mode write) waits for, and for how long.
 *
 * The wait is for the collector to hold every entry up to the request, and, when the full
 * spool sent writes to its dirty bitmap (dirty-bitmap policy), for the resend that journals
 * them again (spool.ts waitResent): those writes are acknowledged but in no entry yet, and
 * the mode promises that a FLUSH after them is durable off-node.
 *
 * Unbounded, a collector outage holds the request until the NBD client gives up: the kernel
 * NBD client fails a request after its I/O timeout (nbd-client -timeout, the CSI attach's
 * setting), which a filesystem turns into EIO and a read-only remount. So the wait has a
 * deadline (`timeoutMs`, 0 for none), and past it the policy applies:
 * - 'async' (default): the request completes, locally durable (the spool is synced), and
 *   the volume is Degraded (reason FlushWaitTimeout): FLUSH/FUA stop waiting for the
 *   collector, as in async mode, until it has acknowledged everything the spool held when
 *   the wait timed out; then flush-sync resumes and Degraded clears. Nothing is lost
 *   locally; what the collector lacks ships when it is back.
 * - 'fail': the request fails with REWIND_ERR_TIMEOUT (EIO to the client), the volume is
 *   Degraded the same way, and every later wait still waits up to the deadline.
 */
export type FlushWaitPolicy = 'async' | 'fail';

export interface FlushWaitOptions {
  /** Longest wait for the collector per request, in ms; 0 = no bound. */
  timeoutMs: number;
  policy: FlushWaitPolicy;
}

/**
 * Default: 25 s, under the 30 s a kernel NBD client is commonly given as its I/O timeout
 * (and the block layer's default request timeout), so the request completes before the
 * client fails it.
 */
export const DEFAULT_FLUSH_WAIT: FlushWaitOptions = { timeoutMs: 25_000, policy: 'async' };

/** The condition reason while degraded (a PascalCase condition reason, as the controller's). */
export const FLUSH_WAIT_TIMEOUT_REASON = 'FlushWaitTimeout';

export interface DurabilityStatus {
  /** The volume's durability mode. */
  mode: DurabilityMode;
  /** What FLUSH/FUA promise right now: the mode, or async while degraded under the async policy. */
  effective: DurabilityMode;
  degraded: boolean;
  /** Set while degraded. */
  reason?: typeof FLUSH_WAIT_TIMEOUT_REASON;
  message?: string;
  /** When the volume became degraded (ISO 8601). */
  since?: string;
  /** Waits that hit the deadline since start. */
  timeouts: number;
  flushWait: FlushWaitOptions;
}

export interface FlushWaitDeps {
  mode: DurabilityMode;
  options?: FlushWaitOptions;
  /** Resolves once the collector durably holds every entry ≤ seq (Shipper.waitDurable). */
  waitDurable(seq: bigint, signal?: AbortSignal): Promise<void>;
  /** Resolves with the resend-end seq once the first n diverted writes are journaled again (Spool.waitResent). */
  waitResent?(n: number, signal?: AbortSignal): Promise<bigint>;
  /** The spool's newest seq: what the collector must acknowledge to end a degraded spell. */
  lastSeq(): bigint;
  logger?: Logger;
}

interface Pending {
  release: () => void;
}

export class FlushWait {
  private readonly options: FlushWaitOptions;
  private readonly log: Logger;
  private degradedSince: Date | undefined;
  private message: string | undefined;
  private timeouts = 0;
  private readonly pending = new Set<Pending>();
  /** Ends the catch-up watch of a degraded spell (close). */
  private readonly closer = new AbortController();
  private listeners = new Set<(s: DurabilityStatus) => void>();

  constructor(private readonly d: FlushWaitDeps) {
    this.options = d.options ?? DEFAULT_FLUSH_WAIT;
    if (!(Number.isFinite(this.options.timeoutMs) && this.options.timeoutMs >= 0)) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `flush wait timeout must be 0 (no bound) or a positive number of ms, not ${this.options.timeoutMs}`);
    }
    this.log = d.logger ?? silentLogger;
  }

  get degraded(): boolean {
    return this.degradedSince !== undefined;
  }

  status(): DurabilityStatus {
    const degraded = this.degraded;
    return {
      mode: this.d.mode,
      effective: degraded && this.options.policy === 'async' ? 'async' : this.d.mode,
      degraded,
      ...(degraded ? { reason: FLUSH_WAIT_TIMEOUT_REASON, message: this.message!, since: this.degradedSince!.toISOString() } : {}),
      timeouts: this.timeouts,
      flushWait: { ...this.options },
    };
  }

  /** Called on every change of status(); returns an unsubscribe function. */
  onChange(cb: (s: DurabilityStatus) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /**
   * Wait for the collector to hold every entry ≤ seq and, with `diverted`, the resend of
   * the first `diverted` writes sent to the dirty bitmap. Bounded as the class comment says.
   */
  wait(seq: bigint, o: { diverted?: number } = {}): Promise<void> {
    // Degraded under the async policy: the request is locally durable already; that is the promise now.
    if (this.degraded && this.options.policy === 'async') return Promise.resolve();
    const ac = new AbortController();
    const work = (async () => {
      let target = seq;
      if (o.diverted && o.diverted > 0 && this.d.waitResent) {
        const end = await this.d.waitResent(o.diverted, ac.signal);
        if (end > target) target = end;
      }
      if (target > 0n) await this.d.waitDurable(target, ac.signal);
    })();
    if (this.options.timeoutMs === 0) return work;
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.pending.delete(p);
        ac.abort();
        if (err === undefined) resolve();
        else reject(err);
      };
      const p: Pending = { release: () => finish() };
      this.pending.add(p);
      const timer = setTimeout(() => {
        const err = this.timedOut(seq);
        finish(this.options.policy === 'async' ? undefined : err);
      }, this.options.timeoutMs);
      work.then(() => finish(), (err: unknown) => finish(err));
    });
  }

  /** Stop the catch-up watch and release every wait (the volume is closing). */
  close(): void {
    this.closer.abort();
  }

  private timedOut(seq: bigint): RewindError {
    this.timeouts++;
    const secs = this.options.timeoutMs / 1000;
    const err = new RewindError(
      ErrorCodes.TIMEOUT,
      `the collector did not acknowledge seq ${seq} within ${secs}s (--flush-wait-timeout); the FLUSH is durable on this node only. Check the collector and the shipper (rewind status), or raise --flush-wait-timeout`,
      { details: { seq, timeoutMs: this.options.timeoutMs } },
    );
    if (this.degraded) return err;
    this.degradedSince = new Date();
    this.message =
      this.options.policy === 'async'
        ? `the collector did not acknowledge a FLUSH within ${secs}s: FLUSH/FUA complete once durable on this node (async) until the collector holds everything up to seq ${this.d.lastSeq()}`
        : `the collector did not acknowledge a FLUSH within ${secs}s: FLUSH/FUA that wait longer fail (--flush-wait-policy fail) until the collector holds everything up to seq ${this.d.lastSeq()}`;
    this.log.error('flush-sync wait timed out; the volume is degraded', { seq, timeoutMs: this.options.timeoutMs, policy: this.options.policy, catchUpSeq: this.d.lastSeq() });
    // Async policy: the other waits complete now too (each would only time out the same way).
    if (this.options.policy === 'async') for (const p of [...this.pending]) p.release();
    this.watchCatchUp();
    this.emit();
    return err;
  }

  /** Degraded until the collector holds what the spool held when the wait timed out. */
  private watchCatchUp(): void {
    const target = this.d.lastSeq();
    this.d.waitDurable(target, this.closer.signal).then(
      () => {
        if (!this.degraded) return;
        this.log.info('the collector caught up; flush-sync waits resume', { seq: target, degradedFor: (Date.now() - this.degradedSince!.getTime()) / 1000 });
        this.degradedSince = undefined;
        this.message = undefined;
        this.emit();
      },
      () => undefined, // closed, or the shipper stopped: stays degraded
    );
  }

  private emit(): void {
    const s = this.status();
    for (const cb of this.listeners) cb(s);
  }
}
