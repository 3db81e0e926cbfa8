import { ErrorCodes, RewindError } from '../core/errors.js';
import { MAX_REQUEST_PAYLOAD } from './constants.js';

/**
 * A byte semaphore: the memory every NBD connection of the process may hold for requests
 * at once. Each request reserves what it will allocate (its READ reply buffer or WRITE
 * payload, plus REQUEST_OVERHEAD_BYTES for the objects around it) before the server
 * takes it off the socket, and gives it back once its reply has left the process. Past
 * the bound a connection stops reading (backpressure through TCP); nothing is refused.
 *
 * The per-connection bounds (MAX_INFLIGHT_BYTES, MAX_INFLIGHT_REQUESTS) cap one peer;
 * without this, 1024 connections × ~100 MiB each was the limit (READs whose replies the
 * peer never reads: 12 such connections held 1.2 GB, test/integration/nbd-memory-bound).
 *
 * Waiters are served first come, first served, and a newcomer does not overtake them, so
 * a 32 MiB request is not starved by a stream of small ones. A peer that never reads its
 * replies keeps what it reserved (at most its per-connection bound) until it goes away.
 */
export interface MemoryGrant {
  /** Cancel a pending wait (the connection closed); a no-op once granted. */
  cancel(): void;
}

interface Waiter {
  bytes: number;
  granted: () => void;
  live: boolean;
}

/** Memory bound for all connections when nothing else is configured (`--nbd-memory`). */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;
/**
 * Objects around each request, whatever its payload: the parsed header, its promise and
 * closures, the reply Buffer and the socket's write entry. Measured: 4 connections sending
 * 1-byte READs and never reading the replies, server in its own process, until the bound
 * stopped them: heap + array buffers grew 303–359 bytes per request held, RSS 170 MiB in
 * all for the 256 MiB reserved. Without it a flood of tiny requests whose replies are never
 * read would be nearly free against the bound while costing real heap.
 */
export const REQUEST_OVERHEAD_BYTES = 512;
/** The bound must fit the largest request a client may send (the advertised maximum). */
export const MIN_MEMORY_BUDGET = MAX_REQUEST_PAYLOAD + 64 * 1024;

export class MemoryBudget {
  private heldBytes = 0;
  private peakBytes = 0;
  private readonly waiters: Waiter[] = [];

  constructor(private limitBytes: number = DEFAULT_MEMORY_BUDGET) {
    MemoryBudget.check(limitBytes);
  }

  private static check(limit: number): void {
    if (!Number.isSafeInteger(limit) || limit < MIN_MEMORY_BUDGET) {
      throw new RewindError(
        ErrorCodes.INVALID_ARGUMENT,
        `the NBD memory bound must be at least ${MIN_MEMORY_BUDGET} bytes (one ${MAX_REQUEST_PAYLOAD}-byte request and its reply), not ${limit}; raise --nbd-memory`,
      );
    }
  }

  get limit(): number {
    return this.limitBytes;
  }

  /** Bytes reserved now (tests, metrics). */
  get held(): number {
    return this.heldBytes;
  }

  /** Most bytes ever reserved at once. */
  get peak(): number {
    return this.peakBytes;
  }

  /** Requests waiting for memory now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Change the bound (e.g. from a flag); waiters that now fit are granted. */
  setLimit(limitBytes: number): void {
    MemoryBudget.check(limitBytes);
    this.limitBytes = limitBytes;
    this.grant();
  }

  /** Reserve at once if it fits and nobody waits; false otherwise (then call `wait`). */
  tryTake(bytes: number): boolean {
    if (this.waiters.length > 0 || this.heldBytes + bytes > this.limitBytes) return false;
    this.take(bytes);
    return true;
  }

  /** Reserve as soon as it fits after those already waiting; `granted` runs then. */
  wait(bytes: number, granted: () => void): MemoryGrant {
    // Every request fits the bound alone: MIN_MEMORY_BUDGET covers the largest one the
    // server accepts, and longer ones reserve only their error reply (NBD_EOVERFLOW).
    // Called after tryTake failed, so it cannot fit now: it is granted from a release.
    const w: Waiter = { bytes, granted, live: true };
    this.waiters.push(w);
    return {
      cancel: () => {
        if (!w.live) return;
        w.live = false;
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        this.grant();
      },
    };
  }

  release(bytes: number): void {
    if (bytes <= 0) return;
    if (bytes > this.heldBytes) throw new RangeError(`NBD memory budget: release of ${bytes} bytes with only ${this.heldBytes} reserved`);
    this.heldBytes -= bytes;
    this.grant();
  }

  private take(bytes: number): void {
    this.heldBytes += bytes;
    if (this.heldBytes > this.peakBytes) this.peakBytes = this.heldBytes;
  }

  private grant(): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (this.heldBytes + w.bytes > this.limitBytes) return;
      this.waiters.shift();
      w.live = false;
      this.take(w.bytes);
      w.granted();
    }
  }
}

/** Shared by every connection of every NBD server in the process. */
export const nbdMemory = new MemoryBudget();
