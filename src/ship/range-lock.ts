/**
 * Serializes operations on overlapping byte ranges. The journal must describe the
 * device exactly: if two in-flight writes overlap, the one journaled later must also
 * land on the backing volume later, or replaying the journal would produce bytes the
 * device never held. NBD leaves the outcome of overlapping concurrent writes undefined,
 * so serializing them costs clients nothing they may rely on; non-overlapping requests
 * (the common case at any queue depth) never wait.
 *
 * Waiters are granted in arrival order per overlap, so a stream of small writes cannot
 * starve a large one. Held ranges stay few (≤ queue depth × connections), so a list is
 * cheaper than a tree here.
 *
 * Every NBD write takes this lock, so the uncontended path allocates nothing but the
 * entry and its release function: no promise, no bigint arithmetic (offsets are below
 * 2^53 for any volume we can serve). A waiter counts the earlier holders it overlaps and
 * is woken when the last of them releases.
 */
interface Held {
  start: number;
  end: number;
  /** Later acquirers that overlap this entry and wait for its release. */
  waiters: Held[] | null;
  /** Earlier overlapping entries not yet released (0 once granted). */
  blockedBy: number;
  wake: (() => void) | null;
  released: boolean;
}

export type Release = () => void;

export class RangeLock {
  private held: Held[] = [];

  /** Hold [offset, offset+length) now if nothing overlaps it; null otherwise (use acquire). */
  tryAcquire(offset: bigint, length: number): Release | null {
    const start = Number(offset);
    const end = start + Math.max(length, 1);
    const held = this.held;
    for (let i = 0; i < held.length; i++) if (held[i]!.start < end && start < held[i]!.end) return null;
    const entry: Held = { start, end, waiters: null, blockedBy: 0, wake: null, released: false };
    held.push(entry);
    return () => this.release(entry);
  }

  /** Wait until [offset, offset+length) overlaps no earlier holder, then hold it. */
  acquire(offset: bigint, length: number): Promise<Release> {
    const start = Number(offset);
    const end = start + Math.max(length, 1);
    const entry: Held = { start, end, waiters: null, blockedBy: 0, wake: null, released: false };
    // Registered before waiting, so later arrivals queue behind this one.
    for (const h of this.held) {
      if (h.start < end && start < h.end) {
        (h.waiters ??= []).push(entry);
        entry.blockedBy++;
      }
    }
    this.held.push(entry);
    const release: Release = () => this.release(entry);
    if (entry.blockedBy === 0) return Promise.resolve(release);
    return new Promise((resolve) => (entry.wake = () => resolve(release)));
  }

  /** Hold the whole device (used for a consistent resync pass or a mark barrier). */
  acquireAll(size: bigint): Promise<Release> {
    return this.acquire(0n, Number(size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : size));
  }

  get size(): number {
    return this.held.length;
  }

  private release(entry: Held): void {
    if (entry.released) return;
    entry.released = true;
    const i = this.held.indexOf(entry);
    if (i >= 0) this.held.splice(i, 1);
    if (entry.waiters === null) return;
    for (const w of entry.waiters) if (--w.blockedBy === 0) w.wake!();
  }
}
