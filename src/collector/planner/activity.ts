import fsp from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { RecordKind } from '../../journal/record.js';
import { ACTIVITY_FILE, appendActivityLines, readActivityFile, rewriteActivityFile } from './activity-file.js';
import { coarsen, RunSet, type Runs } from './run-set.js';

/** Default planner interval (DESIGN §3 Planner; the seed's collection interval). */
export const DEFAULT_PLAN_INTERVAL_NS = 60_000_000_000n;

/**
 * Runs an interval's map may keep before it is coarsened (run-set.ts coarsen). 64k runs is
 * 1 MiB per interval; a minute of 4 KiB random writes at 20k IOPS would otherwise be ~19 MiB.
 */
export const MAX_RUNS_PER_INTERVAL = 65_536;

/**
 * What one interval of one volume saw (the seed's per-interval data set entry). Writes only
 * carry payload over the link, so `writtenBytes` and the map count writes; trims and zero
 * ranges are counted apart (they ship as a header each).
 */
export interface IntervalActivity {
  /** [start, end) in ns; start is a multiple of the interval length. */
  start: bigint;
  end: bigint;
  firstSeq: bigint;
  lastSeq: bigint;
  writeOps: number;
  /** Payload bytes of the writes (what ships without coalescing). */
  writtenBytes: number;
  zeroOps: number;
  zeroedBytes: number;
  /** Distinct bytes written in the interval, exact (what coalescing over it would ship). */
  uniqueBytes: number;
  /** 1 while `runs` is exact; a power of two ≥ 4096 once coarsened (runs then over-cover). */
  grain: number;
  /** The first-update map of the interval (run-set.ts). */
  runs: Runs;
}

/** The parts of the store's EntryIndex the recorder reads (entry-index.ts). */
export interface IndexView {
  readonly baseSeq: bigint;
  readonly count: number;
  readonly times: BigUint64Array;
  readonly offs: Float64Array;
  readonly lens: Uint32Array;
  readonly kinds: Uint8Array;
}

interface OpenInterval {
  start: bigint;
  firstSeq: bigint;
  lastSeq: bigint;
  writeOps: number;
  writtenBytes: number;
  zeroOps: number;
  zeroedBytes: number;
  set: RunSet;
}

export interface ActivityLogOptions {
  intervalNs?: bigint;
  /** Durable seq of the journal: records past it (a journal cut back by repair) are dropped. */
  durableSeq: bigint;
  /** Time of the volume's checkpoint: intervals ending by then describe folded history. */
  historyStartNs: bigint;
  maxRuns?: number;
  logger?: Logger;
}

/**
 * The planner's recorder for one volume. It reads entries from the store's in-memory
 * index as they are taken in (catchUp after each durable append), so it adds no disk read
 * and no second copy of the data path; closed intervals are appended to the activity file
 * (activity-file.ts), the open one lives in memory and is rebuilt from the index on open.
 * Intervals leave with the log they describe: consolidation calls dropEndingBy.
 */
export class ActivityLog {
  readonly intervalNs: bigint;
  private readonly closed: IntervalActivity[];
  private open: OpenInterval | undefined;
  /** Next seq to take from the index. */
  private next: bigint;
  private writing: Promise<void> = Promise.resolve();
  /** The file missed an append (I/O error): the next write rewrites it whole. */
  private fileStale = false;

  private constructor(private readonly file: string, private readonly index: IndexView, intervalNs: bigint, intervals: IntervalActivity[], next: bigint, private readonly maxRuns: number, private readonly log: Logger) {
    this.intervalNs = intervalNs;
    this.closed = intervals;
    this.next = next;
  }

  static async open(dir: string, index: IndexView, o: ActivityLogOptions): Promise<ActivityLog> {
    const intervalNs = o.intervalNs ?? DEFAULT_PLAN_INTERVAL_NS;
    const log = (o.logger ?? silentLogger).child({ component: 'planner' });
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      throw fromSystemError(err, `create planner directory ${dir}`);
    }
    const file = path.join(dir, ACTIVITY_FILE);
    const read = await readActivityFile(file);
    let rewrite = read.damaged;
    if (read.damaged) log.warn('activity file damaged after its intact prefix; the rest is rebuilt from the journal', { file, kept: read.intervals.length });
    // Kept only while consistent with the journal: same interval length (a changed setting
    // rebuilds everything the log still holds), ascending, nothing past what is durable.
    const kept: IntervalActivity[] = [];
    for (const a of read.intervals) {
      const ok = a.end - a.start === intervalNs && a.lastSeq <= o.durableSeq && a.end > o.historyStartNs
        && (kept.length === 0 || (a.start > kept[kept.length - 1]!.start && a.firstSeq > kept[kept.length - 1]!.lastSeq));
      if (ok) kept.push(a);
      else rewrite = true;
    }
    const last = kept[kept.length - 1];
    let next = last ? last.lastSeq + 1n : index.baseSeq;
    if (next < index.baseSeq) next = index.baseSeq;
    const a = new ActivityLog(file, index, intervalNs, kept, next, o.maxRuns ?? MAX_RUNS_PER_INTERVAL, log);
    if (rewrite) a.persist(true);
    a.catchUp(o.durableSeq);
    await a.flush();
    return a;
  }

  /**
   * Take in the index's entries up to `toSeq` (durable ones only: the caller's promise).
   * Runs after every durable append, so it is on the ingest path: 0.08 µs per write for
   * sequential 4 KiB writes, 0.41 µs for random 4 KiB writes over 1 GiB (200k writes, one
   * interval, this machine), and sealing that interval's 47k runs took 5 ms.
   */
  catchUp(toSeq: bigint): void {
    const ix = this.index;
    if (this.next < ix.baseSeq) this.next = ix.baseSeq; // folded before we saw it: nothing to do but skip
    const from = Number(this.next - ix.baseSeq);
    const to = Math.min(ix.count - 1, Number(toSeq - ix.baseSeq));
    if (to < from) return;
    const fresh: IntervalActivity[] = [];
    const I = this.intervalNs;
    let cur = this.open;
    for (let i = from; i <= to; i++) {
      const kind = ix.kinds[i]!;
      if (kind === RecordKind.Mark) continue;
      const t = ix.times[i]!;
      const start = t - (t % I);
      const seq = ix.baseSeq + BigInt(i);
      // Times never go back in seq order (the journal refuses it), so an entry of a later
      // interval closes the open one for good.
      if (!cur || start > cur.start) {
        if (cur) fresh.push(this.seal(cur));
        cur = { start, firstSeq: seq, lastSeq: seq, writeOps: 0, writtenBytes: 0, zeroOps: 0, zeroedBytes: 0, set: new RunSet() };
      }
      cur.lastSeq = seq;
      const len = ix.lens[i]!;
      if (kind === RecordKind.Write) {
        // A coalesced placeholder (length 0) carries nothing: the entry that covered it does.
        if (len === 0) continue;
        cur.writeOps++;
        cur.writtenBytes += len;
        cur.set.add(ix.offs[i]!, ix.offs[i]! + len);
      } else {
        cur.zeroOps++;
        cur.zeroedBytes += len;
      }
    }
    this.open = cur;
    this.next = ix.baseSeq + BigInt(to + 1);
    if (fresh.length > 0) {
      this.closed.push(...fresh);
      this.persist(false, fresh);
    }
  }

  private seal(o: OpenInterval): IntervalActivity {
    let runs = o.set.toRuns();
    let grain = 1;
    while (runs.length / 2 > this.maxRuns) {
      grain = grain === 1 ? 4096 : grain * 2;
      runs = coarsen(runs, grain);
    }
    return { start: o.start, end: o.start + this.intervalNs, firstSeq: o.firstSeq, lastSeq: o.lastSeq, writeOps: o.writeOps, writtenBytes: o.writtenBytes,
      zeroOps: o.zeroOps, zeroedBytes: o.zeroedBytes, uniqueBytes: o.set.bytes, grain, runs };
  }

  /** Every interval seen, ascending, the open one last (its map copied as it is now). */
  intervals(): IntervalActivity[] {
    return this.open ? [...this.closed, this.seal(this.open)] : this.closed.slice();
  }

  /** Forget intervals that end by `timeNs` (consolidation folded their log into the checkpoint). */
  dropEndingBy(timeNs: bigint): void {
    let n = 0;
    while (n < this.closed.length && this.closed[n]!.end <= timeNs) n++;
    if (n === 0) return;
    this.closed.splice(0, n);
    this.persist(true);
  }

  /**
   * Queue a write of the file. Failures are logged, not thrown: the file is a copy of what
   * the journal can rebuild, and the next write (or the next open) repairs it.
   */
  private persist(whole: boolean, fresh: IntervalActivity[] = []): void {
    // What the file must hold once this task ran: later tasks append after it.
    const snapshot = this.closed.slice();
    this.writing = this.writing.then(async () => {
      try {
        if (whole || this.fileStale) await rewriteActivityFile(this.file, snapshot);
        else await appendActivityLines(this.file, fresh);
        this.fileStale = false;
      } catch (err) {
        this.fileStale = true;
        this.log.warn('activity file write failed; it is rewritten on the next interval or rebuilt on open', { err });
      }
    });
  }

  /** Writes queued so far are done. */
  flush(): Promise<void> {
    return this.writing;
  }
}
