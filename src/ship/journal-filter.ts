import type { Backend, Filter } from '../nbd/backend.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import { RangeLock, type Release } from './range-lock.js';
import { payloadPool } from '../nbd/payload-pool.js';

/**
 * The journal tee (DESIGN §2): every WRITE / TRIM / WRITE_ZEROES passes through to the
 * backing volume AND becomes one log entry in the spool. Reads, block status and cache
 * go straight to `next`.
 *
 * Ordering: each mutation holds its byte range while it is appended and written, so the
 * order of entries in the journal is the order in which overlapping writes reached the
 * device; replaying the journal reproduces the device byte for byte.
 *
 * Durability (DESIGN §3):
 * - async: FLUSH/FUA make the backing write and the spool durable locally. With `wal`,
 *   the spool alone is synced: it is the volume's write-ahead log, and whoever sets the
 *   option must redo the spool onto the backing volume after a crash and sync the backing
 *   volume before the spool frees entries (node-volume.ts does both). Writes the spool
 *   could not take (full, tracking dirty extents) are only in the backing volume, so a
 *   FLUSH after any of them syncs it too.
 * - flush-sync: as async, and FLUSH/FUA also wait until the collector holds every entry
 *   up to them (`waitRemote`), so what the application made durable is durable off-node.
 *   Writes the full spool sent to its dirty bitmap are waited for too, through their resend.
 * - sync: every mutation waits for the collector, a diverted one for its resend.
 */
export type DurabilityMode = 'async' | 'flush-sync' | 'sync';

/** What the filter needs of the spool (src/ship/spool.ts implements it). */
export interface SpoolPort {
  append(e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }): Promise<JournalRecord | null>;
  /** Synchronous append when there is room now; undefined means "use append()". */
  appendIfRoom?(e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }): JournalRecord | undefined;
  sync(): Promise<bigint>;
  readonly lastSeq: bigint;
  /**
   * false: the spool copies whatever it keeps of a payload before append returns, so the
   * caller's buffer is not pinned (ownedCopy below is then only a wasted copy). Absent or
   * true: it keeps the buffer itself.
   */
  readonly retainsPayloads?: boolean;
  /**
   * Writes the full spool sent to its dirty bitmap so far (dirty-bitmap policy): they are
   * acknowledged but in no entry until resent. Absent: the spool never diverts.
   */
  readonly divertedWrites?: number;
}

export interface JournalFilterOptions {
  spool: SpoolPort;
  mode?: DurabilityMode;
  /**
   * Resolves when the collector has durably acknowledged every entry ≤ seq and, with
   * `diverted`, the resend of the first `diverted` writes the spool sent to its dirty
   * bitmap (node-volume.ts gives FlushWait.wait, which also bounds the wait).
   */
  waitRemote?: (seq: bigint, o?: { diverted?: number }) => Promise<void>;
  /** Shared with anything else that must order itself against writes (base copy, resync). */
  lock?: RangeLock;
  /** FLUSH/FUA sync the spool only (see above); the caller owns redo and backing syncs. */
  wal?: boolean;
  /** Told of every backing write in flight, so a backing sync can wait for them first. */
  applies?: InflightApplies;
}

/**
 * Backing-volume writes in flight. `settled()` waits for those running now (not for later
 * ones), so "sync the backing volume for every entry appended so far" is settled() then
 * flush: an entry can be in the spool while its backing write still runs. Writes are
 * numbered in start order, so the oldest one running is the first in the set.
 */
export class InflightApplies {
  private lastId = 0;
  private readonly running = new Set<number>();
  private waiters: Array<{ upTo: number; resolve: () => void }> = [];

  begin(): number {
    const id = ++this.lastId;
    this.running.add(id);
    return id;
  }

  end(id: number): void {
    this.running.delete(id);
    if (this.waiters.length === 0) return;
    const oldest = this.running.size === 0 ? Infinity : this.running.values().next().value!;
    this.waiters = this.waiters.filter((w) => {
      if (oldest <= w.upTo) return true;
      w.resolve();
      return false;
    });
  }

  track<T>(p: Promise<T>): Promise<T> {
    const id = this.begin();
    const done = () => this.end(id);
    p.then(done, done);
    return p;
  }

  settled(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    const upTo = this.lastId;
    return new Promise((resolve) => this.waiters.push({ upTo, resolve }));
  }
}

type SpoolEntry = { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer };

const EMPTY = Buffer.alloc(0);

/**
 * The journal keeps each payload until it is written and shipped (writer queue, the
 * shipper's tail cache). A payload sliced out of a larger socket chunk would pin the whole
 * chunk that long: 4 KiB writes pinned 64 KiB each, and random-write IOPS halved under
 * the GC pressure (measured: fio randwrite 4 KiB QD16). So small slices are copied, into
 * the shared slab of payloadPool.keep rather than one allocation each: a Buffer of its own
 * per 4 KiB write was one more ArrayBuffer for the GC to track and sweep per request.
 * A payload that owns most of its memory, or is such a slab piece already (the NBD server
 * cuts them when it reads into its own buffers), is kept as is.
 */
function ownedCopy(buf: Buffer): Buffer {
  if (buf.byteLength * 2 >= buf.buffer.byteLength || payloadPool.isKept(buf)) return buf;
  const copy = payloadPool.keep(buf.length);
  buf.copy(copy);
  return copy;
}

export function journalFilter(opts: JournalFilterOptions): Filter {
  const mode = opts.mode ?? 'async';
  if (mode !== 'async' && !opts.waitRemote) {
    throw new TypeError(`durability mode ${mode} needs a shipper (waitRemote)`);
  }
  const lock = opts.lock ?? new RangeLock();
  const { spool } = opts;

  return (next: Backend): Backend => {
    /** A write went to the backing volume only since its last sync (wal mode). */
    let unjournaled = false;
    /**
     * The backing sync in flight, shared: with multi-conn a FLUSH can arrive while another
     * one's backing sync runs. Its unjournaled writes may have been acknowledged before the
     * second FLUSH, which must not return before that sync ends, even though the first one
     * already cleared `unjournaled`.
     */
    let backingSync: Promise<void> | undefined;
    const syncBacking = (): Promise<void> => {
      unjournaled = false;
      const p: Promise<void> = next.flush().then(
        () => {
          if (backingSync === p) backingSync = undefined;
        },
        (err: unknown) => {
          if (backingSync === p) backingSync = undefined;
          // Not known durable: the next FLUSH syncs the backing volume again.
          if (opts.wal) unjournaled = true;
          throw err;
        },
      );
      backingSync = p;
      return p;
    };
    // In wal mode the backing write of a FUA request need not be durable itself.
    const backingOpts = <T extends { fua: boolean }>(o: T): T => (opts.wal && o.fua ? { ...o, fua: false } : o);
    /**
     * What follows a journaled mutation: FUA makes the spool durable (and, per mode, waits
     * for the collector); sync mode waits for the collector on every write. Undefined when
     * there is nothing to wait for, which is the common case.
     */
    const afterJournal = (rec: JournalRecord | null, fua: boolean): Promise<void> | undefined => {
      const remote = mode === 'sync' || (fua && mode === 'flush-sync');
      // rec === null: the spool is full and tracking dirty extents instead; the extent is
      // resent from the backing volume later, and until then only the backing volume holds
      // it. The mode's promise still holds: a remote wait is for that resend to be durable
      // at the collector (flush-sync FUA, every sync-mode write).
      if (rec === null) {
        unjournaled = true;
        if (!remote) return fua && opts.wal ? next.flush() : undefined;
        const diverted = spool.divertedWrites ?? 0;
        return (async () => {
          if (fua && opts.wal) await next.flush();
          await opts.waitRemote!(spool.lastSeq, diverted > 0 ? { diverted } : undefined);
        })();
      }
      if (!fua && !remote) return undefined;
      return (async () => {
        if (fua) await spool.sync();
        if (remote) await opts.waitRemote!(rec.seq);
      })();
    };

    /**
     * Append the entry and apply it to the backing volume under the range lock. Both run
     * concurrently: the spool append is a buffered write, and neither depends on the other
     * finishing first because the lock already fixed the order against overlapping writes.
     *
     * Hot path (every NBD write): an uncontended lock and a spool with room take no
     * promise of their own; only the backing write's promise is waited on. The general
     * path below does the same steps through promises.
     */
    const journalAndApply = (release: Release, e: SpoolEntry, apply: () => Promise<void>, fua: boolean): Promise<void> => {
      let rec: JournalRecord | undefined;
      let applied: Promise<void>;
      let id = 0;
      try {
        rec = spool.appendIfRoom?.(e);
        if (rec === undefined) return general(release, e, apply, fua);
        if (opts.applies) id = opts.applies.begin();
        applied = apply();
      } catch (err) {
        if (id !== 0) opts.applies!.end(id);
        release();
        return Promise.reject(err);
      }
      const journaled = rec;
      return applied.then(
        () => {
          if (id !== 0) opts.applies!.end(id);
          release();
          return afterJournal(journaled, fua);
        },
        (err: unknown) => {
          if (id !== 0) opts.applies!.end(id);
          release();
          throw err;
        },
      );
    };

    /** The spool must wait (full, or its writer behind): the same steps through append(). */
    const general = async (release: Release, e: SpoolEntry, apply: () => Promise<void>, fua: boolean): Promise<void> => {
      // Both settle before the range is released, even when one fails: a later overlapping
      // write must not reach the device while this one is still being written.
      let settled: [PromiseSettledResult<JournalRecord | null>, PromiseSettledResult<void>];
      try {
        settled = await Promise.allSettled([spool.append(e), opts.applies ? opts.applies.track(apply()) : apply()]);
      } finally {
        release();
      }
      const [journaled, applied] = settled;
      if (journaled.status === 'rejected') throw journaled.reason;
      if (applied.status === 'rejected') throw applied.reason;
      await afterJournal(journaled.value, fua);
    };

    const mutate = (offset: bigint, length: number, kind: RecordKind, flags: number, payload: Buffer, apply: () => Promise<void>, fua: boolean): Promise<void> => {
      const e: SpoolEntry = { kind, flags, offset, length, payload };
      const release = lock.tryAcquire(offset, length);
      if (release !== null) return journalAndApply(release, e, apply, fua);
      return lock.acquire(offset, length).then((r) => journalAndApply(r, e, apply, fua));
    };

    return {
      get size() {
        return next.size;
      },
      capabilities: next.capabilities,
      blockSizes: next.blockSizes,
      // Each write's promise settles after its entry is appended (copied, when the spool
      // does not retain payloads) and its backing write is done.
      get borrowsWriteBuffers() {
        return spool.retainsPayloads === false && next.borrowsWriteBuffers === true;
      },
      pread: (buf, offset) => next.pread(buf, offset),
      blockStatus: (offset, length) => next.blockStatus(offset, length),
      cache: (offset, length) => next.cache(offset, length),

      pwrite: (buf, offset, o) =>
        mutate(offset, buf.length, RecordKind.Write, o.fua ? RecordFlag.Fua : 0, spool.retainsPayloads === false ? buf : ownedCopy(buf), () => next.pwrite(buf, offset, backingOpts(o)), o.fua),

      trim: (offset, length, o) =>
        mutate(offset, length, RecordKind.Trim, o.fua ? RecordFlag.Fua : 0, EMPTY, () => next.trim(offset, length, backingOpts(o)), o.fua),

      zero: (offset, length, o) =>
        mutate(
          offset,
          length,
          RecordKind.Zero,
          (o.fua ? RecordFlag.Fua : 0) | (o.noHole ? RecordFlag.NoHole : 0),
          EMPTY,
          () => next.zero(offset, length, backingOpts(o)),
          o.fua,
        ),

      async flush() {
        // Everything acknowledged before this FLUSH was appended before we read lastSeq.
        const upTo = spool.lastSeq;
        // Writes sent to the dirty bitmap before this FLUSH: it waits for their resend too.
        const diverted = spool.divertedWrites ?? 0;
        // A new backing sync when a write since the last one missed the spool (or always,
        // without wal); else the one in flight, which may cover such a write acknowledged
        // before this FLUSH.
        const backing = !opts.wal || unjournaled ? syncBacking() : backingSync;
        await Promise.all([spool.sync(), backing]);
        if (mode !== 'async' && (upTo > 0n || diverted > 0)) await opts.waitRemote!(upTo, diverted > 0 ? { diverted } : undefined);
      },

      close: () => next.close(),
    };
  };
}
