/**
 * Exponential back-off with "full jitter" (AWS architecture blog, 2015): the delay is
 * uniform in [0, min(cap, base·2^attempt)], which spreads a fleet of shippers that lost
 * the same collector instead of having them reconnect in lock-step.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Random source in [0, 1); injectable for tests. */
  random?: () => number;
}

/**
 * The default ceiling is short on purpose: in flush-sync mode every FLUSH waits while the
 * shipper is away, so the wait after the collector comes back is stalled I/O for the
 * workload. Measured (test/integration/collector-kill-nbd-flush.test.ts, collector down
 * ~4 s under fio writes): reconnected 4.0–4.4 s after the collector listened again with a
 * 10 s ceiling, 0.3–1.1 s with this one. A refused connect costs the collector side next to
 * nothing; full jitter keeps a fleet from reconnecting together. A collector that is up but
 * refuses for lack of disk space is retried less often (the shipper's NO_SPACE_RETRY_MS).
 */
const DEFAULT_MAX_MS = 2_000;

export class Backoff {
  private attempt = 0;
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 100;
    this.maxMs = opts.maxMs ?? DEFAULT_MAX_MS;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
  }

  /** Upper bound of the next delay (before jitter). */
  ceiling(): number {
    return Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
  }

  /** The next delay in ms; grows the ceiling until it reaches maxMs. */
  next(): number {
    const ceil = this.ceiling();
    if (ceil < this.maxMs) this.attempt++;
    return Math.floor(this.random() * ceil);
  }

  /** After a connection that made progress: start again from the initial delay. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** setTimeout as a promise that an AbortSignal cuts short (resolves, never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
