import type { Backend, Filter } from '../nbd/backend.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import { RangeLock } from './range-lock.js';

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
 * - sync: every mutation waits for the collector.
 */
export type DurabilityMode = 'async' | 'flush-sync' | 'sync';

/** What the filter needs of the spool (src/ship/spool.ts implements it). */
export interface SpoolPort {
  append(e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }): Promise<JournalRecord | null>;
  sync(): Promise<bigint>;
  readonly lastSeq: bigint;
}

export interface JournalFilterOptions {
  spool: SpoolPort;
  mode?: DurabilityMode;
  /** Resolves when the collector has durably acknowledged every entry ≤ seq. */
  waitRemote?: (seq: bigint) => Promise<void>;
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
 * flush: an entry can be in the spool while its backing write still runs.
 */
export class InflightApplies {
  private readonly running = new Set<Promise<unknown>>();

  track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    const done = () => this.running.delete(p);
    p.then(done, done);
    return p;
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The journal keeps each payload until it is written and shipped (writer queue, the
 * shipper's tail cache). A payload sliced out of a larger socket chunk would pin the whole
 * chunk that long: 4 KiB writes pinned 64 KiB each, and random-write IOPS halved under
 * the GC pressure (measured: fio randwrite 4 KiB QD16). Copying a small slice is cheaper
 * than that; a payload that owns most of its memory is kept as is.
 */
function ownedCopy(buf: Buffer): Buffer {
  if (buf.byteLength * 2 >= buf.buffer.byteLength) return buf;
  const copy = Buffer.allocUnsafeSlow(buf.length);
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
    // In wal mode the backing write of a FUA request need not be durable itself.
    const backingOpts = <T extends { fua: boolean }>(o: T): T => (opts.wal ? { ...o, fua: false } : o);
    /**
     * Append the entry and apply it to the backing volume under the range lock. Both run
     * concurrently: the spool append is a buffered write, and neither depends on the other
     * finishing first because the lock already fixed the order against overlapping writes.
     */
    const mutate = async (
      offset: bigint,
      length: number,
      entry: { kind: RecordKind; flags: number; payload: Buffer },
      apply: () => Promise<void>,
      fua: boolean,
    ): Promise<void> => {
      const release = await lock.acquire(offset, length);
      let rec: JournalRecord | null;
      try {
        [rec] = await Promise.all([spool.append({ ...entry, offset, length }), opts.applies ? opts.applies.track(apply()) : apply()]);
      } finally {
        release();
      }
      // rec === null: the spool is full and tracking dirty extents instead; the extent is
      // resent from the backing volume later, so there is no entry to wait for, and only
      // the backing volume holds it.
      if (rec === null) {
        unjournaled = true;
        if (fua && opts.wal) await next.flush();
        return;
      }
      if (fua) await spool.sync();
      if (mode === 'sync' || (fua && mode === 'flush-sync')) await opts.waitRemote!(rec.seq);
    };

    return {
      get size() {
        return next.size;
      },
      capabilities: next.capabilities,
      blockSizes: next.blockSizes,
      pread: (buf, offset) => next.pread(buf, offset),
      blockStatus: (offset, length) => next.blockStatus(offset, length),
      cache: (offset, length) => next.cache(offset, length),

      pwrite: (buf, offset, o) =>
        mutate(offset, buf.length, { kind: RecordKind.Write, flags: o.fua ? RecordFlag.Fua : 0, payload: ownedCopy(buf) }, () => next.pwrite(buf, offset, backingOpts(o)), o.fua),

      trim: (offset, length, o) =>
        mutate(offset, length, { kind: RecordKind.Trim, flags: o.fua ? RecordFlag.Fua : 0, payload: EMPTY }, () => next.trim(offset, length, backingOpts(o)), o.fua),

      zero: (offset, length, o) =>
        mutate(
          offset,
          length,
          { kind: RecordKind.Zero, flags: (o.fua ? RecordFlag.Fua : 0) | (o.noHole ? RecordFlag.NoHole : 0), payload: EMPTY },
          () => next.zero(offset, length, backingOpts(o)),
          o.fua,
        ),

      async flush() {
        // Everything acknowledged before this FLUSH was appended before we read lastSeq.
        const upTo = spool.lastSeq;
        const backingToo = !opts.wal || unjournaled;
        unjournaled = false;
        try {
          await Promise.all([spool.sync(), backingToo ? next.flush() : undefined]);
        } catch (err) {
          if (opts.wal && backingToo) unjournaled = true;
          throw err;
        }
        if (mode !== 'async' && upTo > 0n) await opts.waitRemote!(upTo);
      },

      close: () => next.close(),
    };
  };
}
