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
 */
interface Held {
  start: bigint;
  end: bigint;
  done: Promise<void>;
}

export class RangeLock {
  private held: Held[] = [];

  /** Wait until [offset, offset+length) overlaps no earlier holder, then hold it. */
  async acquire(offset: bigint, length: number): Promise<() => void> {
    const start = offset;
    const end = offset + BigInt(Math.max(length, 1));
    const blockers = this.held.filter((h) => h.start < end && start < h.end).map((h) => h.done);
    let release!: () => void;
    const entry: Held = { start, end, done: new Promise<void>((r) => (release = r)) };
    // Registered before waiting, so later arrivals queue behind this one.
    this.held.push(entry);
    if (blockers.length > 0) await Promise.all(blockers);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const i = this.held.indexOf(entry);
      if (i >= 0) this.held.splice(i, 1);
      release();
    };
  }

  /** Hold the whole device (used for a consistent resync pass or a mark barrier). */
  acquireAll(size: bigint): Promise<() => void> {
    return this.acquire(0n, Number(size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : size));
  }

  get size(): number {
    return this.held.length;
  }
}
