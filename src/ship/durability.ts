import { ErrorCodes, RewindError } from '../core/errors.js';

/**
 * Waiters for "the collector durably holds every entry ≤ seq". The NBD journal filter
 * awaits these at FLUSH/FUA (flush-sync) or on every write (sync). Kept in a list sorted
 * by seq so an ack resolves a prefix; there are few at a time (≤ queue depth).
 */
interface Waiter {
  seq: bigint;
  resolve: () => void;
  reject: (err: Error) => void;
  cleanup: () => void;
}

export class DurableWaiters {
  private acked = 0n;
  private waiters: Waiter[] = [];
  private failure: Error | undefined;

  get ackedSeq(): bigint {
    return this.acked;
  }

  get pending(): number {
    return this.waiters.length;
  }

  /** The collector acked every entry ≤ seq; never moves backwards. */
  advance(seq: bigint): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.seq <= seq) n++;
    const done = this.waiters.splice(0, n);
    for (const w of done) {
      w.cleanup();
      w.resolve();
    }
  }

  wait(seq: bigint, signal?: AbortSignal): Promise<void> {
    if (seq <= this.acked) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (signal?.aborted) return Promise.reject(abortError(seq));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(abortError(seq));
      };
      const w: Waiter = { seq, resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      let i = this.waiters.length;
      while (i > 0 && this.waiters[i - 1]!.seq > seq) i--;
      this.waiters.splice(i, 0, w);
    });
  }

  /**
   * The collector's numbering restarted below what it had acknowledged (it lost entries):
   * the waiters' seqs name entries it no longer holds, so none of them can be honoured by
   * a later ack. Reject them with `err`, and count acks from `seq` again.
   */
  restart(seq: bigint, err: Error): void {
    this.acked = seq;
    const all = this.waiters.splice(0);
    for (const w of all) {
      w.cleanup();
      w.reject(err);
    }
  }

  /** Reject every waiter (shipper stopped); later waits reject too. */
  fail(err: Error): void {
    this.failure = err;
    const all = this.waiters.splice(0);
    for (const w of all) {
      w.cleanup();
      w.reject(err);
    }
  }
}

function abortError(seq: bigint): RewindError {
  return new RewindError(ErrorCodes.TIMEOUT, `gave up waiting for the collector to hold seq ${seq}`);
}
