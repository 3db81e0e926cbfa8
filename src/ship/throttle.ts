import { sleep } from './backoff.js';

/**
 * Bandwidth cap as a token bucket: `rate` bytes per second refill a bucket of `burst`
 * bytes. A send larger than the bucket is allowed to drive it negative (debt), and the
 * next send waits for the debt to be repaid, so big batches never deadlock and the
 * long-run rate still holds.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number = Math.max(rate / 4, 64 * 1024),
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rate > 0)) throw new RangeError(`bandwidth cap must be > 0 bytes/s (got ${rate})`);
    this.tokens = this.burst;
    this.last = this.now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }

  /** ms until `bytes` may be sent (0 = now). */
  delayFor(bytes: number): number {
    this.refill();
    if (this.tokens >= Math.min(bytes, this.burst) || this.tokens >= this.burst) return 0;
    const need = Math.min(bytes, this.burst) - this.tokens;
    return Math.ceil((need / this.rate) * 1000);
  }

  /** Wait until `bytes` may be sent, then spend them. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < 10_000; i++) {
      const d = this.delayFor(bytes);
      if (d === 0) break;
      if (signal?.aborted) return;
      await sleep(d, signal);
    }
    this.tokens -= bytes;
  }
}
