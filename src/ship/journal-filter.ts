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
 * - async: FLUSH/FUA make the backing write and the spool durable locally.
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
        [rec] = await Promise.all([spool.append({ ...entry, offset, length }), apply()]);
      } finally {
        release();
      }
      // rec === null: the spool is full and tracking dirty extents instead; the extent is
      // resent from the backing volume later, so there is no entry to wait for.
      if (rec === null) return;
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
        mutate(offset, buf.length, { kind: RecordKind.Write, flags: o.fua ? RecordFlag.Fua : 0, payload: ownedCopy(buf) }, () => next.pwrite(buf, offset, o), o.fua),

      trim: (offset, length, o) =>
        mutate(offset, length, { kind: RecordKind.Trim, flags: o.fua ? RecordFlag.Fua : 0, payload: EMPTY }, () => next.trim(offset, length, o), o.fua),

      zero: (offset, length, o) =>
        mutate(
          offset,
          length,
          { kind: RecordKind.Zero, flags: (o.fua ? RecordFlag.Fua : 0) | (o.noHole ? RecordFlag.NoHole : 0), payload: EMPTY },
          () => next.zero(offset, length, o),
          o.fua,
        ),

      async flush() {
        // Everything acknowledged before this FLUSH was appended before we read lastSeq.
        const upTo = spool.lastSeq;
        await Promise.all([spool.sync(), next.flush()]);
        if (mode !== 'async' && upTo > 0n) await opts.waitRemote!(upTo);
      },

      close: () => next.close(),
    };
  };
}
