import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, fromSystemError, RewindError } from '../core/errors.js';
import { HybridClock } from '../core/hlc.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { readJournalPositioned, type ReadPosition } from '../journal/reader.js';
import { RECORD_HEADER_SIZE, RecordKind, type JournalRecord } from '../journal/record.js';
import { JournalWriter } from '../journal/writer.js';
import { coalesceBatch } from './spool-coalesce.js';
import type { Extent } from './spool-dirty-bitmap.js';
import { SpoolSideFiles } from './spool-side-files.js';
import { SpoolTailCache } from './spool-tail-cache.js';
import { RESEND_BEGIN_MARK, RESEND_END_MARK } from '../journal/resend-marks.js';

export interface SpoolOptions {
  volumeSize: bigint;
  /** Bound on the spool's bytes on disk (segments, including entries already acked but not yet freed). */
  maxBytes: number;
  fullPolicy: 'block' | 'dirty-bitmap';
  /** Dirty-bitmap granularity, default 64 KiB. */
  blockSize?: number;
  /** Default: maxBytes/4 capped to [1 MiB, 64 MiB], so acks can always free space. */
  segmentBytes?: number;
  clock?: HybridClock;
  logger?: Logger;
  /**
   * Runs before acked segments are deleted. When the spool is the volume's write-ahead log
   * (journal-filter.ts `wal`), this makes the backing volume durable for every entry about
   * to go, since after that no redo could bring them back.
   */
  beforeFree?: () => Promise<void>;
  /**
   * Runs before open sets aside a journal that ends before the acked seq (see open), with
   * that journal's directory. When the spool is the volume's write-ahead log, this redoes
   * it onto the backing volume: it may hold FLUSHed writes the backing file lost.
   */
  beforeSetAside?: (journalDir: string) => Promise<void>;
  /**
   * Bytes of recent entries kept in memory for the shipper (default 32 MiB). 0 when
   * nothing ships (`rewind serve` alone): the entries would only be garbage the GC must
   * trace: at 4 KiB QD16 they outlived young-generation collections and cost a full
   * mark-compact every 150–300 ms (--trace-gc), about a sixth of the event loop.
   */
  tailCacheBytes?: number;
  /**
   * Write the journal O_DIRECT where the filesystem allows it (default true): journaled
   * bytes are written once and read back rarely (the shipper reads recent entries from
   * memory), so the page cache would only hold a second copy of every write
   * (src/journal/direct-append.ts has the numbers).
   */
  directIo?: boolean;
}

export type SpoolState = 'ok' | 'blocked' | 'dirty-tracking';
export type SpoolEntry = { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer };

interface Blocked {
  e: SpoolEntry;
  size: number;
  resolve: (r: JournalRecord) => void;
  reject: (e: unknown) => void;
}

function markEntry(name: string): SpoolEntry {
  return { kind: RecordKind.Mark, flags: 0, offset: 0n, length: 0, payload: Buffer.from(name, 'utf8') };
}

/** Appends wait while more than this is queued in memory for the journal write. */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;
const DEFAULT_BATCH_RECORDS = 1024;
const DEFAULT_BATCH_BYTES = 8 * 1024 * 1024;

/**
 * The node-side spool: journal entries waiting to be shipped, bounded in bytes (DESIGN §3
 * "Stream", issue 2 item 4). Layout of `dir`: `journal/` (segments, docs/journal-format.md),
 * `state.json` (acked seq, flags) and `dirty.bitmap`, both checksummed and written atomically.
 *
 * Seqs are assigned here (lastSeq+1) with an HLC time. Entries are readable by the shipper
 * as soon as they are appended (recent ones come from an in-memory tail cache holding the
 * same payload buffers the writer holds, older ones from disk), so shipping never waits
 * for a local fsync; `sync()` is the local-durability point.
 *
 * Payload ownership: append() hands the payload to the journal writer; do not mutate it.
 */
export class Spool extends EventEmitter {
  private blocked: Blocked[] = [];
  private recordWaiters: Array<{ after: bigint; resolve: () => void }> = [];
  private pos: ReadPosition | null = null;
  private closed = false;
  private _state: SpoolState = 'ok';
  private _ackedSeq: bigint;
  private rebasing = false;
  private freeing: Promise<void> = Promise.resolve();
  private diverted = 0;
  /** Writes diverted before the last resend-end mark (all journaled again), and that mark's seq. */
  private resentUpTo = 0;
  private resentSeq = 0n;
  private resendWaiters: Array<{ n: number; resolve: (seq: bigint) => void; reject: (e: unknown) => void }> = [];

  private constructor(
    readonly dir: string,
    private readonly o: SpoolOptions,
    private writer: JournalWriter,
    private readonly side: SpoolSideFiles,
    private readonly clock: HybridClock,
    private cache: SpoolTailCache,
    private readonly log: Logger,
  ) {
    super();
    this._ackedSeq = side.ackedSeq;
    this._state = this.computeState();
    // Extents a previous run left to resend (or a whole device): writes acknowledged before
    // this open that the journal lacks. Counted as one diverted write, so a flush-sync FLUSH
    // waits for the resend that brings them back (waitResent).
    if ((side.bitmap?.count ?? 0) > 0 || side.needsFullResync) this.diverted = 1;
  }

  static async open(dir: string, opts: SpoolOptions): Promise<Spool> {
    if (!(opts.maxBytes > 0)) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `spool maxBytes must be > 0 (got ${opts.maxBytes})`);
    const log = (opts.logger ?? silentLogger).child({ spool: dir });
    await fsp.mkdir(dir, { recursive: true }).catch((err) => {
      throw fromSystemError(err, `create spool directory ${dir}`);
    });
    const segmentBytes = Spool.segmentBytesFor(opts);
    const side = await SpoolSideFiles.load(dir, opts.volumeSize, opts.blockSize ?? 64 * 1024, log);
    const jdir = Spool.journalDir(dir);
    // Readers (the shipper) see an entry once the kernel has it: set once the spool exists.
    let self: Spool | undefined;
    const onWritten = (seq: bigint) => self?.wakeReaders(seq);
    let writer = await JournalWriter.open(jdir, { segmentBytes, logger: log, firstSeq: side.ackedSeq + 1n, onWritten, directIo: opts.directIo ?? true });
    if (side.ackedSeq > writer.lastSeq) {
      // The collector holds entries this journal no longer has (they were shipped before
      // they were durable here, then a crash lost them). Everything local is acked, so set
      // the journal aside and continue after the acked seq; the volume may not match what
      // the collector has for those entries, so a full resync is required. Acks are only
      // persisted up to the journal's durable end (ack below), so this is a spool written
      // before that rule: its journal may hold FLUSHed writes, redone first (beforeSetAside).
      await writer.close();
      await opts.beforeSetAside?.(jdir);
      const aside = `${jdir}.behind-${Date.now()}.bak`;
      await fsp.rename(jdir, aside);
      log.error('spool journal is behind the collector; set aside, full resync required', { lastSeq: writer.lastSeq, ackedSeq: side.ackedSeq, aside });
      await side.requireFullResync();
      writer = await JournalWriter.open(jdir, { segmentBytes, logger: log, firstSeq: side.ackedSeq + 1n, onWritten, directIo: opts.directIo ?? true });
    }
    if (side.ackedSeq < writer.firstSeq - 1n) side.ackedSeq = writer.firstSeq - 1n;
    const clock = opts.clock ?? new HybridClock();
    clock.observe(writer.lastTime);
    await side.saveState();
    self = new Spool(dir, opts, writer, side, clock, new SpoolTailCache(opts.tailCacheBytes), log);
    return self;
  }

  /** Default: maxBytes/4 within [1 MiB, 64 MiB], so acks can always free whole segments. */
  private static segmentBytesFor(opts: SpoolOptions): number {
    return opts.segmentBytes ?? Math.min(64 << 20, Math.max(1 << 20, Math.floor(opts.maxBytes / 4)));
  }

  private get segmentBytes(): number {
    return Spool.segmentBytesFor(this.o);
  }

  /** See SpoolPort.retainsPayloads: the tail cache keeps payloads, and so does a writer without its own copy. */
  get retainsPayloads(): boolean {
    return this.cache.enabled || !this.writer.copiesPayloads;
  }

  /** Where a spool keeps its journal (for `rewind journal verify|dump|replay`). */
  static journalDir(dir: string): string {
    return path.join(dir, 'journal');
  }

  get lastSeq(): bigint {
    return this.writer.lastSeq;
  }
  get durableSeq(): bigint {
    return this.writer.durableSeq;
  }
  get ackedSeq(): bigint {
    return this._ackedSeq;
  }
  /** Bytes of the spool's segments on disk (including queued appends). */
  get bytes(): number {
    return this.writer.bytes;
  }
  get state(): SpoolState {
    return this._state;
  }
  /** The dirty bitmap or ack state could not be trusted on open: resend the whole volume. */
  get needsFullResync(): boolean {
    return this.side.needsFullResync;
  }
  /** Oldest seq still in the spool. */
  get firstSeq(): bigint {
    return this.writer.firstSeq;
  }

  /**
   * Append one mutation. 'block' policy: when full, waits (FIFO) until ack() frees space.
   * 'dirty-bitmap' policy: when full, marks the extent dirty (durably noted before this
   * resolves) and returns null.
   */
  async append(e: SpoolEntry): Promise<JournalRecord | null> {
    this.checkOpen();
    const size = RECORD_HEADER_SIZE + e.payload.length;
    // Memory bound: a writer faster than the disk waits here (not counted as 'blocked').
    if (this.writer.pendingBytes > MAX_PENDING_BYTES) await this.writer.drain(MAX_PENDING_BYTES);
    if (this.blocked.length === 0 && this.hasRoom(size)) return this.appendNow(e);
    if (this.o.fullPolicy === 'dirty-bitmap') {
      // The first write the journal misses: from here the collector's copy lacks writes
      // until the dirty extents are resent, so say so in the journal before acknowledging it.
      // (A rebase appends its own, as the first entry of the new journal.)
      if (!this.rebasing && (this.side.bitmap?.count ?? 0) === 0) this.appendNow(markEntry(RESEND_BEGIN_MARK));
      this.diverted++;
      await this.side.markDirty(e.offset, e.length);
      this.updateState();
      return null;
    }
    return this.enqueueBlocked(e, size);
  }

  /**
   * The synchronous path of append(): the entry when it can be taken right now (room, no
   * writer waiting ahead of it, the writer's queue under its memory bound), undefined
   * when the caller must use append(). Every NBD write tries this first: no promise.
   */
  appendIfRoom(e: SpoolEntry): JournalRecord | undefined {
    this.checkOpen();
    if (this.writer.pendingBytes > MAX_PENDING_BYTES || this.blocked.length > 0) return undefined;
    if (!this.hasRoom(RECORD_HEADER_SIZE + e.payload.length)) return undefined;
    return this.appendNow(e);
  }

  /** A named point, ordered with the writes around it. Never dropped to the bitmap. */
  async mark(name: string): Promise<JournalRecord> {
    this.checkOpen();
    const e = markEntry(name);
    const size = RECORD_HEADER_SIZE + e.payload.length;
    // Under 'dirty-bitmap' a mark may overshoot maxBytes by its few bytes rather than be lost.
    if (this.blocked.length === 0 && !this.rebasing && (this.o.fullPolicy === 'dirty-bitmap' || this.hasRoom(size))) return this.appendNow(e);
    return this.enqueueBlocked(e, size);
  }

  /**
   * The collector holds entries up to `collectorSeq`, past the end of this spool: they were
   * shipped from memory before they reached the spool's disk and a crash lost them here.
   * Numbering must continue after the collector's seq (reusing a seq it holds would be
   * ignored as a resend: silent loss). Everything in the local journal is at or below
   * what the collector holds, so set it aside, start a new journal at collectorSeq+1, and
   * require a full resync so the collector's copy matches the device again. Appends that
   * arrive meanwhile wait and are numbered in the new journal ('rebased' is emitted after).
   */
  async rebase(collectorSeq: bigint, opts: { restamp?: boolean } = {}): Promise<void> {
    this.checkOpen();
    // restamp: the entries past collectorSeq were stamped below the collector's newest time
    // (shipper.ts stampedBehind); they are set aside unshipped and the resync resends their data.
    if ((collectorSeq <= this.writer.lastSeq && !opts.restamp) || this.rebasing) return;
    this.rebasing = true;
    try {
      const old = this.writer;
      await old.close();
      // The journal set aside can no longer be redone: its entries must be in the backing volume.
      await this.o.beforeFree?.();
      const jdir = Spool.journalDir(this.dir);
      const aside = `${jdir}.behind-${Date.now()}.bak`;
      await fsp.rename(jdir, aside);
      this.log.error('spool journal is behind the collector; set aside, full resync required', { lastSeq: old.lastSeq, collectorSeq, aside });
      this.side.ackedSeq = collectorSeq;
      this._ackedSeq = collectorSeq;
      await this.side.requireFullResync();
      this.writer = await JournalWriter.open(jdir, { segmentBytes: this.segmentBytes, logger: this.log, firstSeq: collectorSeq + 1n, onWritten: (seq) => this.wakeReaders(seq), directIo: this.o.directIo ?? true });
      this.clock.observe(old.lastTime);
      this.cache = new SpoolTailCache(this.o.tailCacheBytes);
      // The collector's copy no longer matches the device until the full resync is done.
      this.appendNow(markEntry(RESEND_BEGIN_MARK));
      this.pos = null;
    } finally {
      this.rebasing = false;
      this.wakeBlocked();
    }
    this.emit('rebased', collectorSeq);
  }

  /**
   * Continue after entries the collector holds that this node pulled instead of writing
   * (catch-up.ts: a restored image or an in-place revert filled into the backing file).
   * Only when everything local is acknowledged: the journal then holds nothing the
   * collector lacks, so it is dropped (after the backing file is made durable) and
   * numbering goes on at collectorSeq + 1, with no resync — the device already matches.
   */
  async continueAfter(collectorSeq: bigint, collectorTime: bigint): Promise<void> {
    this.checkOpen();
    const last = this.writer.lastSeq;
    if (last !== this._ackedSeq || collectorSeq < last) {
      throw new RewindError(ErrorCodes.INTERNAL, `spool ${this.dir}: cannot continue after collector seq ${collectorSeq} with local seqs up to ${last} of which ${this._ackedSeq} acknowledged`);
    }
    this.clock.observe(collectorTime);
    if (collectorSeq === last) return;
    const old = this.writer;
    await old.close();
    await this.o.beforeFree?.();
    const jdir = Spool.journalDir(this.dir);
    await fsp.rm(jdir, { recursive: true, force: true });
    this.side.ackedSeq = collectorSeq;
    this._ackedSeq = collectorSeq;
    await this.side.saveState();
    this.writer = await JournalWriter.open(jdir, { segmentBytes: this.segmentBytes, logger: this.log, firstSeq: collectorSeq + 1n, onWritten: (seq) => this.wakeReaders(seq), directIo: this.o.directIo ?? true });
    this.clock.observe(old.lastTime);
    this.cache = new SpoolTailCache(this.o.tailCacheBytes);
    this.pos = null;
    this._state = this.computeState();
  }

  /**
   * Fold in the collector's newest entry time (its Welcome or status): a node whose clock
   * is behind then still stamps entries the collector takes (its journal refuses times
   * that go back).
   */
  observeTime(t: bigint): void {
    this.clock.observe(t);
  }

  /** Time of the newest entry in the spool's journal (0 while it has none). */
  get lastTime(): bigint {
    return this.writer.lastTime;
  }

  /** Make everything appended so far durable locally (and the dirty bitmap clean on disk). */
  async sync(): Promise<bigint> {
    this.checkOpen();
    await this.writer.sync();
    await this.side.saveBitmapIfChanged();
    return this.writer.durableSeq;
  }

  /**
   * Entries from `fromSeq` on, at most maxRecords (default 1024) and about maxBytes
   * (default 8 MiB; at least one entry). With `coalesce`, entries overwritten later in the
   * same batch come back as zero-length placeholders (see spool-coalesce.ts), so every seq
   * is still present.
   */
  async read(fromSeq: bigint, opts: { maxRecords?: number; maxBytes?: number; coalesce?: boolean } = {}): Promise<JournalRecord[]> {
    this.checkOpen();
    const limit = this.writer.writtenSeq;
    if (fromSeq > limit) return [];
    if (fromSeq < this.writer.firstSeq) {
      throw new RewindError(ErrorCodes.OUT_OF_RANGE, `spool ${this.dir}: seq ${fromSeq} was freed (oldest is ${this.writer.firstSeq}); the collector must resume from its acked seq or resync`, {
        details: { fromSeq, firstSeq: this.writer.firstSeq },
      });
    }
    const maxRecords = opts.maxRecords ?? DEFAULT_BATCH_RECORDS;
    const maxBytes = opts.maxBytes ?? DEFAULT_BATCH_BYTES;
    const out: JournalRecord[] = [];
    let bytes = 0;
    const cacheFirst = this.cache.firstSeq ?? this.writer.lastSeq + 1n;
    if (fromSeq < cacheFirst) {
      // Never past what is written: beyond it the disk holds padding or a write in progress.
      const to = cacheFirst - 1n < limit ? cacheFirst - 1n : limit;
      bytes = await this.readDisk(fromSeq, to, out, maxRecords, maxBytes);
    }
    const next = out.length > 0 ? out[out.length - 1].seq + 1n : fromSeq;
    if (out.length < maxRecords && (bytes < maxBytes || out.length === 0)) {
      this.cache.take(next, out, maxRecords, maxBytes, bytes);
    }
    while (out.length > 0 && out[out.length - 1]!.seq > limit) out.pop();
    return opts.coalesce ? coalesceBatch(out).records : out;
  }

  private async readDisk(from: bigint, to: bigint, out: JournalRecord[], maxRecords: number, maxBytes: number): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      let bytes = 0;
      out.length = 0;
      try {
        for await (const p of readJournalPositioned(Spool.journalDir(this.dir), { fromSeq: from, toSeq: to, position: this.pos ?? undefined })) {
          const size = RECORD_HEADER_SIZE + p.record.payload.length;
          if (out.length > 0 && (out.length >= maxRecords || bytes + size > maxBytes)) break;
          out.push(p.record);
          bytes += size;
          this.pos = { seq: p.record.seq + 1n, segmentFirstSeq: p.segmentFirstSeq, offset: p.offset + p.size };
        }
        return bytes;
      } catch (err) {
        // An ack may free a segment between listing and opening it: retry once.
        if (attempt === 0 && (err as RewindError).code === ErrorCodes.NOT_FOUND) continue;
        if (attempt === 0 && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
    }
  }

  /** Resolves once an entry after afterSeq is readable (see wakeReaders), when `signal` aborts or the spool closes. */
  waitForRecords(afterSeq: bigint, signal?: AbortSignal): Promise<void> {
    if (this.writer.writtenSeq > afterSeq || this.closed || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const w = { after: afterSeq, resolve: () => { signal?.removeEventListener('abort', onAbort); resolve(); } };
      const onAbort = () => {
        this.recordWaiters = this.recordWaiters.filter((x) => x !== w);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.recordWaiters.push(w);
    });
  }

  /** The collector durably has everything ≤ seq: persist that, free whole segments, wake writers. */
  async ack(seq: bigint): Promise<void> {
    if (seq <= this._ackedSeq || this.closed) return;
    if (seq > this.writer.lastSeq) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `spool ${this.dir}: ack of seq ${seq} beyond the last entry ${this.writer.lastSeq}; the collector is ahead of this spool (wrong volume or generation?)`);
    }
    this._ackedSeq = seq;
    this.cache.dropThrough(seq);
    // Persisted only as far as the journal is durable: entries are shipped once written,
    // before their fdatasync, so an ack can pass the journal's durable end. Recorded past
    // it, a power cut would leave a journal ending before the acked seq: open would set it
    // aside, FLUSHed entries in it included, and nothing would redo them onto the backing
    // file. Recorded at the durable end, open keeps the journal, the node redoes it, and
    // the shipper finds the collector ahead (rebase + full resync), which resends the rest.
    const persist = seq < this.writer.durableSeq ? seq : this.writer.durableSeq;
    if (persist > this.side.ackedSeq) {
      this.side.ackedSeq = persist;
      await this.side.saveState();
    }
    if (this.closed) return;
    if (this.writer.canRemoveBelow(seq + 1n)) {
      // One free at a time: acks arrive faster than a backing sync completes.
      const run = this.freeing.then(async () => {
        if (this.closed || !this.writer.canRemoveBelow(this._ackedSeq + 1n)) return;
        const upTo = this._ackedSeq;
        await this.o.beforeFree?.();
        if (this.closed) return;
        await this.writer.removeSegmentsBelow(upTo + 1n);
      });
      this.freeing = run.catch(() => undefined);
      await run;
    }
    if (this.pos && this.pos.segmentFirstSeq < this.writer.firstSeq) this.pos = null;
    this.wakeBlocked();
    // Room again after writes went to the dirty bitmap: whoever owns the device resends them.
    if ((this.side.bitmap?.count ?? 0) > 0 && this.blocked.length === 0 && this.hasRoom(RECORD_HEADER_SIZE)) this.emit('resend-wanted');
  }

  /** Writes sent to the dirty bitmap instead of the journal, ever (a resend compares it before and after). */
  get divertedWrites(): number {
    return this.diverted;
  }

  /**
   * A resend finished: append the resend-end mark if the journal now describes the whole
   * device (nothing dirty, no full resync pending). Synchronous, so no write can be
   * diverted between the check and the mark. Returns whether the mark went in.
   */
  endResend(): boolean {
    this.checkOpen();
    if (this.rebasing || (this.side.bitmap?.count ?? 0) > 0 || this.side.needsFullResync) return false;
    const end = this.appendNow(markEntry(RESEND_END_MARK));
    // Nothing is dirty at this instant: every write diverted so far is journaled before `end`.
    this.resentUpTo = this.diverted;
    this.resentSeq = end.seq;
    const ready = this.resendWaiters.filter((w) => w.n <= this.resentUpTo);
    this.resendWaiters = this.resendWaiters.filter((w) => w.n > this.resentUpTo);
    for (const w of ready) w.resolve(end.seq);
    return true;
  }

  /**
   * Resolves with the seq of a resend-end mark once the first `n` diverted writes
   * (divertedWrites) are journaled again, before that mark: what the collector must hold
   * for a FLUSH after them to keep the flush-sync promise. Rejects when `signal` aborts or
   * the spool closes.
   */
  waitResent(n: number, signal?: AbortSignal): Promise<bigint> {
    if (n <= this.resentUpTo) return Promise.resolve(this.resentSeq);
    if (this.closed) return Promise.reject(new RewindError(ErrorCodes.CLOSED, `spool ${this.dir} is closed`));
    if (signal?.aborted) return Promise.reject(new RewindError(ErrorCodes.TIMEOUT, `gave up waiting for the resend of writes the full spool of ${this.dir} sent to its dirty bitmap`));
    return new Promise<bigint>((resolve, reject) => {
      const onAbort = () => {
        this.resendWaiters = this.resendWaiters.filter((x) => x !== w);
        reject(new RewindError(ErrorCodes.TIMEOUT, `gave up waiting for the resend of writes the full spool of ${this.dir} sent to its dirty bitmap`));
      };
      const w = {
        n,
        resolve: (seq: bigint) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(seq);
        },
        reject: (e: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.resendWaiters.push(w);
    });
  }

  /** Extents that must be resent from the backing volume (dirty-bitmap policy). */
  dirtyExtents(): Extent[] {
    return this.side.bitmap?.extents() ?? [];
  }

  /** The resend entries for `extents` are appended: forget them (blocks re-marked since dirtyExtents() stay dirty). */
  async clearDirty(extents: Extent[]): Promise<void> {
    this.side.bitmap?.clear(extents);
    await this.side.saveBitmapIfChanged();
    this.updateState();
  }

  /** The whole volume was resent after `needsFullResync`: clear the flag and the bitmap. */
  async fullResyncDone(): Promise<void> {
    await this.side.fullResyncDone();
    this.updateState();
  }

  /** Subscribe to state changes (metrics, status); returns an unsubscribe function. */
  onState(cb: (state: SpoolState, prev: SpoolState) => void): () => void {
    this.on('state', cb);
    return () => this.off('state', cb);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new RewindError(ErrorCodes.CLOSED, `spool ${this.dir} closed while the append waited for space`);
    for (const b of this.blocked.splice(0)) b.reject(err);
    for (const w of this.recordWaiters.splice(0)) w.resolve();
    const unsent = new RewindError(ErrorCodes.CLOSED, `spool ${this.dir} closed before the writes its full spool sent to the dirty bitmap were resent; they are resent at the next start`);
    for (const w of this.resendWaiters.splice(0)) w.reject(unsent);
    await this.freeing;
    await this.writer.close();
    // Everything is durable now (close syncs): the whole ack can be recorded.
    if (this._ackedSeq > this.side.ackedSeq) this.side.ackedSeq = this._ackedSeq;
    await this.side.saveBitmapIfChanged();
    await this.side.saveState();
  }

  private checkOpen(): void {
    if (this.closed) throw new RewindError(ErrorCodes.CLOSED, `spool ${this.dir} is closed`);
  }

  private hasRoom(size: number): boolean {
    if (this.rebasing) return false;
    // With nothing unacked, always admit: otherwise one record bigger than the free space
    // (or the unfreeable current segment) could block forever.
    return this.writer.bytes + size <= this.o.maxBytes || this.writer.lastSeq === this._ackedSeq;
  }

  private appendNow(e: SpoolEntry): JournalRecord {
    const rec: JournalRecord = {
      kind: e.kind, flags: e.flags, seq: this.writer.lastSeq + 1n, time: this.clock.now(),
      // crc is filled in by the writer; declared here so every record has one shape.
      offset: e.offset, length: e.length, payload: e.payload, crc: undefined,
    };
    this.writer.append(rec);
    this.cache.push(rec, this.writer.writtenSeq);
    return rec;
  }

  /**
   * Entries become readable once written to the segment file (not yet synced). Shipping
   * them straight from memory would let a kill -9 of this process leave the collector
   * holding entries the spool never wrote, which forces a rebase and a full resync; the
   * page cache outlives the process, so this way only a power cut can.
   */
  private wakeReaders(seq: bigint): void {
    if (this.recordWaiters.length === 0) return;
    const ready = this.recordWaiters.filter((w) => seq > w.after);
    this.recordWaiters = this.recordWaiters.filter((w) => seq <= w.after);
    for (const w of ready) w.resolve();
  }

  private enqueueBlocked(e: SpoolEntry, size: number): Promise<JournalRecord> {
    return new Promise<JournalRecord>((resolve, reject) => {
      this.blocked.push({ e, size, resolve, reject });
      if (this.blocked.length === 1) this.log.warn('spool full: writers blocked until the collector acknowledges', { bytes: this.writer.bytes, maxBytes: this.o.maxBytes });
      this.updateState();
    });
  }

  private wakeBlocked(): void {
    while (this.blocked.length > 0 && this.hasRoom(this.blocked[0].size)) {
      const b = this.blocked.shift()!;
      try {
        b.resolve(this.appendNow(b.e));
      } catch (err) {
        b.reject(err);
      }
    }
    this.updateState();
  }

  private computeState(): SpoolState {
    if (this.blocked.length > 0) return 'blocked';
    if ((this.side.bitmap?.count ?? 0) > 0) return 'dirty-tracking';
    return 'ok';
  }

  private updateState(): void {
    const s = this.computeState();
    if (s === this._state) return;
    const prev = this._state;
    this._state = s;
    this.log.info('spool state', { state: s, prev });
    this.emit('state', s, prev);
  }
}
