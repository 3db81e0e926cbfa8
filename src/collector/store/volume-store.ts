import fsp from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError, fromSystemError, isRewindError } from '../../core/errors.js';
import { formatNs } from '../../core/hlc.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { RecordKind, type JournalRecord } from '../../journal/record.js';
import { JournalWriter } from '../../journal/writer.js';
import { checkUserMarkName, RESEND_BEGIN_MARK, RESEND_END_MARK, RESERVED_MARK_PREFIX } from '../../journal/resend-marks.js';
import { ActivityLog, type IntervalActivity } from '../planner/activity.js';
import { CheckpointWriter, listCheckpointManifests, loadLatestCheckpoint, removeCheckpoint, type Checkpoint } from './checkpoint.js';
import { EntryIndex } from './entry-index.js';
import { HistoryLock, Serial } from './history-lock.js';
import { refineDiff } from './diff-refine.js';
import { emitImage, type RestoreSink } from './image-emitter.js';
import { allocatedExtents, diffPlan, planImage, type DiffExtent, type Extent } from './image-plan.js';
import { readJson, writeJsonAtomic } from './json-file.js';
import { MarkBook } from './mark-book.js';
import { consolidationTarget, type RetentionPolicy } from './retention.js';
import { scrubVolume, type ScrubProblem } from './scrub.js';
import { SegmentLocator } from './segment-locator.js';

export type Point = { time: bigint } | { mark: string } | { markId: string } | { seq: bigint };
/** `id`: the caller's key for the mark (CreateMark's id, e.g. a RestorePoint's UID). */
export interface MarkInfo { name: string; seq: bigint; time: bigint; id?: string }
/** `createdNs`: when the collector first heard of the volume (ns); absent in older stores. */
/**
 * lastRestore: the seqs the newest VolumeRestore wrote into this volume (a restore
 * writer's Append stream), so a node that shipped up to fromSeq − 1 knows the entries
 * after it are a revert to pull, not writes of its own that a crash lost.
 */
export interface VolumeMeta { name: string; size: string; generation: number; token?: string; createdNs?: string; lastRestore?: { fromSeq: string; toSeq: string } }
/** `planIntervalNs`: the planner's interval (planner/activity.ts; default 60 s). */
export interface VolumeOptions { segmentBytes?: number; retention?: RetentionPolicy; logger?: Logger; planIntervalNs?: bigint }

export function describePoint(p: Point): string {
  if ('mark' in p) return `mark "${p.mark}"`;
  if ('markId' in p) return `mark id "${p.markId}"`;
  if ('seq' in p) return `seq ${p.seq}`;
  return `time ${formatNs(p.time)}`;
}

/** One protected volume in the collector: its journal, checkpoint, index and marks. */
export class VolumeStore {
  readonly name: string;
  readonly size: bigint;
  private tok: string | undefined;
  private gen: number;
  private ckpt: Checkpoint;
  private markBook!: MarkBook;
  private activityLog!: ActivityLog;
  /** Spans [from, to) of seqs while the node resent the volume (resend-marks.ts), and one still open. */
  private resends: Array<{ from: bigint; to: bigint }> = [];
  private resendOpen: bigint | undefined;
  /** Mark records that could not be read at open (see learnUnreadableMark). */
  private readonly unreadableMarks = new Set<bigint>();
  private readonly serial = new Serial();
  /** The latest append() call, settled (see append). */
  private appendTail: Promise<unknown> = Promise.resolve();
  /**
   * Highest seq whose append has finished: durable AND taken in (its marks learned). Points,
   * marks and consolidation see only this far; the journal itself may be durable further.
   */
  private takenSeq: bigint;
  private closing = false;
  private readonly history = new HistoryLock();
  /** The journal writer failed and could not be reopened yet (e.g. the disk is still full). */
  private needsReopen = false;

  private readonly createdNs: bigint | undefined;
  private meta: VolumeMeta;

  private constructor(
    readonly dir: string,
    meta: VolumeMeta,
    private writer: JournalWriter,
    private readonly index: EntryIndex,
    private readonly locator: SegmentLocator,
    ckpt: Checkpoint,
    private readonly opts: VolumeOptions,
    private readonly log: Logger,
  ) {
    this.name = meta.name;
    this.size = BigInt(meta.size);
    this.tok = meta.token;
    this.meta = meta;
    this.gen = meta.generation;
    this.createdNs = meta.createdNs === undefined ? undefined : BigInt(meta.createdNs);
    this.ckpt = ckpt;
    this.takenSeq = writer.durableSeq;
  }

  static async open(dir: string, opts: VolumeOptions = {}): Promise<VolumeStore> {
    const meta = await readJson<VolumeMeta>(path.join(dir, 'volume.json'));
    if (!meta) throw new RewindError(ErrorCodes.NOT_FOUND, `${dir} holds no volume.json; it is not a collector volume directory`);
    const ckDir = path.join(dir, 'checkpoints');
    await fsp.mkdir(ckDir, { recursive: true });
    const ckpt = await loadLatestCheckpoint(ckDir);
    // A crash between committing a checkpoint and removing the older one leaves both.
    for (const m of await listCheckpointManifests(ckDir)) {
      if (m !== ckpt.manifestPath) await fsp.rm(m, { force: true }), await fsp.rm(m.replace(/\.json$/, '.img'), { force: true });
    }
    const log = (opts.logger ?? silentLogger).child({ volume: meta.name });
    const jdir = path.join(dir, 'journal');
    // Direct writes: the log is read back only by restores and diffs, and a page-cache copy
    // of every ingested byte cost more than the disk write (ingest through the shipper,
    // alternating: 220/268 buffered vs 332/308 MiB/s direct; direct-append.ts).
    const writer = await JournalWriter.open(jdir, { segmentBytes: opts.segmentBytes, logger: log, firstSeq: ckpt.seq + 1n, directIo: true });
    const index = new EntryIndex(ckpt.seq + 1n);
    const locator = new SegmentLocator(jdir);
    await locator.catchUp(index, writer.durableSeq);
    if (index.lastSeq < writer.durableSeq && writer.durableSeq > ckpt.seq) {
      throw new RewindError(ErrorCodes.JOURNAL_CORRUPT, `volume ${meta.name}: journal ends at seq ${writer.durableSeq} but only seqs up to ${index.lastSeq} could be indexed; run scrub`);
    }
    const v = new VolumeStore(dir, meta, writer, index, locator, ckpt, opts, log);
    v.markBook = await MarkBook.load(dir);
    // Mark records in the journal are marks too (they may be newer than marks.json).
    for (let i = 0; i < index.count; i++) if (index.kinds[i] === RecordKind.Mark) await v.learnMarkRecord(index.seqAt(i));
    v.activityLog = await ActivityLog.open(path.join(dir, 'planner'), index, { intervalNs: opts.planIntervalNs, durableSeq: writer.durableSeq, historyStartNs: ckpt.time, logger: log });
    return v;
  }

  static async create(dir: string, meta: VolumeMeta, opts: VolumeOptions = {}): Promise<VolumeStore> {
    await fsp.mkdir(dir, { recursive: true });
    await writeJsonAtomic(path.join(dir, 'volume.json'), meta);
    return VolumeStore.open(dir, opts);
  }

  get durableSeq(): bigint {
    return this.atLeastCheckpoint(this.takenSeq);
  }

  /** Seqs at or below the checkpoint are all folded into it. */
  private atLeastCheckpoint(seq: bigint): bigint {
    return seq > this.ckpt.seq ? seq : this.ckpt.seq;
  }
  get generation(): number {
    return this.gen;
  }

  /** The token a shipper must present (volume.json); undefined for a volume stored without one. */
  get token(): string | undefined {
    return this.tok;
  }

  /** Replace the volume's token (rotation); persisted before it takes effect. */
  setToken(token: string): Promise<void> {
    return this.serial.run(async () => {
      const meta = { ...this.meta, token };
      try {
        await writeJsonAtomic(path.join(this.dir, 'volume.json'), meta);
      } catch (err) {
        throw fromSystemError(err, `volume ${this.name}: save the new token`);
      }
      this.meta = meta;
      this.tok = token;
    });
  }

  /**
   * Time of the newest durable entry: a writer's next entry must be later. Not the journal
   * writer's own last time, which may include entries of a failed append (a full disk)
   * that the node resends with their own times once the writer has been reopened.
   */
  get latestTime(): bigint {
    return this.timeOfSeq(this.durableSeq);
  }

  /** See VolumeMeta.lastRestore. */
  get lastRestore(): { fromSeq: bigint; toSeq: bigint } | undefined {
    const r = this.meta.lastRestore;
    return r ? { fromSeq: BigInt(r.fromSeq), toSeq: BigInt(r.toSeq) } : undefined;
  }

  /** Record (durably) that seqs fromSeq..toSeq were written by a restore writer. */
  noteRestore(fromSeq: bigint, toSeq: bigint): Promise<void> {
    return this.serial.run(async () => {
      const meta = { ...this.meta, lastRestore: { fromSeq: fromSeq.toString(), toSeq: toSeq.toString() } };
      try {
        await writeJsonAtomic(path.join(this.dir, 'volume.json'), meta);
      } catch (err) {
        throw fromSystemError(err, `volume ${this.name}: record the restore`);
      }
      this.meta = meta;
    });
  }

  private timeOfSeq(seq: bigint): bigint {
    return seq <= this.ckpt.seq ? this.ckpt.time : this.index.times[this.index.indexOf(seq)]!;
  }

  /**
   * Append a batch idempotently; resolves with the new durable seq once fdatasync'ed.
   *
   * Records are checked and copied into the journal under the volume's lock, and made
   * durable outside it: the next batch is checked and copied while this one is written and
   * fdatasync'ed, so the disk does not wait for the CPU between batches. The journal writes
   * and syncs in seq order, so calls still resolve in call order.
   */
  append(records: JournalRecord[]): Promise<bigint> {
    if (this.closing) return Promise.reject(new RewindError(ErrorCodes.CLOSED, `volume ${this.name} is closed; append to the reopened store`));
    const before = this.appendTail;
    const done = this.serial.run(() => this.stage(records)).then(async ({ writer, synced, marks, upTo }) => {
      try {
        await synced;
      } catch (err) {
        await this.serial.run(() => this.afterFailedWrite(writer));
        throw fromSystemError(err, `volume ${this.name}: append`);
      }
      if (marks.length > 0) await this.serial.run(async () => { for (const r of marks) await this.learnMarkRecord(r.seq, r.payload.toString('utf8')); });
      // What this call reports includes earlier calls' records: they must be fully taken
      // in (their marks learned) first. A caller acknowledging the result may rely on it.
      await before;
      if (upTo > this.takenSeq) this.takenSeq = upTo;
      this.activityLog.catchUp(this.takenSeq);
      return upTo;
    });
    this.appendTail = done.catch(() => undefined);
    return done;
  }

  /** Check `records` and queue those past what is already queued; returns the sync that covers them. */
  private async stage(records: JournalRecord[]): Promise<{ writer: JournalWriter; synced: Promise<void>; marks: JournalRecord[]; upTo: bigint }> {
    if (this.needsReopen) await this.recoverWriter();
    // Past what is queued, not what is durable: the batch before may still be on its way to the disk.
    const queued = this.atLeastCheckpoint(this.writer.lastSeq);
    const fresh = records.filter((r) => r.seq > queued);
    for (let i = 0; i < fresh.length; i++) {
      const r = fresh[i]!;
      const want = queued + 1n + BigInt(i);
      if (r.seq !== want) {
        throw new RewindError(ErrorCodes.JOURNAL_SEQ_GAP, `volume ${this.name}: got seq ${r.seq} but the next seq this volume takes is ${want}; resend from ${want}`, { details: { expected: want, got: r.seq } });
      }
      if (r.kind !== RecordKind.Mark && (r.offset + BigInt(r.length) > this.size)) {
        throw new RewindError(ErrorCodes.OUT_OF_RANGE, `volume ${this.name}: seq ${r.seq} touches [${r.offset}, +${r.length}) beyond the volume size ${this.size}`);
      }
      if (r.kind === RecordKind.Write && r.payload.length !== r.length) {
        throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `volume ${this.name}: write seq ${r.seq} has ${r.payload.length} payload bytes for length ${r.length}`);
      }
    }
    const writer = this.writer;
    try {
      for (const r of fresh) {
        writer.append(r);
        this.index.push(r);
      }
    } catch (err) {
      await this.afterFailedWrite(writer);
      throw fromSystemError(err, `volume ${this.name}: append`);
    }
    // Even with nothing fresh: records a previous call queued are acknowledged only once durable.
    const synced = writer.sync();
    synced.catch(() => undefined); // awaited by append(); this only keeps an early failure from being "unhandled"
    const upTo = this.atLeastCheckpoint(writer.lastSeq);
    return { writer, synced, marks: fresh.filter((r) => r.kind === RecordKind.Mark), upTo };
  }

  /**
   * Forget what did not become durable, then try to reopen the journal right away; if that
   * fails too (the disk is still full), the next append retries it first. Once per failed
   * writer: every batch queued on it fails the same way.
   */
  private async afterFailedWrite(failed: JournalWriter): Promise<void> {
    if (failed !== this.writer || this.closing) return;
    this.truncateIndexToDurable();
    await this.recoverWriter().catch((e: unknown) => this.log.warn('journal reopen failed; will retry on the next append', { err: e }));
  }

  private truncateIndexToDurable(): void {
    const keep = Number(this.writer.durableSeq - this.index.baseSeq + 1n);
    if (keep < this.index.count) this.index.count = Math.max(0, keep);
  }

  /** After a failed write (disk full, EIO): reopen the journal at what is durable. */
  private async recoverWriter(): Promise<void> {
    await this.writer.close().catch(() => undefined);
    try {
      this.writer = await JournalWriter.open(path.join(this.dir, 'journal'), { segmentBytes: this.opts.segmentBytes, logger: this.log, firstSeq: this.ckpt.seq + 1n, directIo: true });
      this.needsReopen = false;
    } catch (err) {
      this.needsReopen = true;
      throw fromSystemError(err, `volume ${this.name}: reopen journal after a failed append`);
    }
    // Records written before the failed fdatasync may have survived the repair: index
    // them from the files so the index and the journal agree again.
    this.truncateIndexToDurable();
    await this.locator.catchUp(this.index, this.writer.durableSeq);
    // Take those records in as open() would, marks included. By seq, not by position:
    // consolidation may drop entries from the index while a mark record is being read.
    const to = this.writer.durableSeq;
    for (let q = this.atLeastCheckpoint(this.takenSeq) + 1n; q <= to; q++) {
      const i = this.index.indexOf(q);
      if (i >= 0 && i < this.index.count && this.index.kinds[i] === RecordKind.Mark) await this.learnMarkRecord(q);
    }
    if (to > this.takenSeq) this.takenSeq = to;
    this.log.warn('journal reopened after a failed append', { durableSeq: this.writer.durableSeq });
  }

  private async learnMarkRecord(seq: bigint, name?: string): Promise<void> {
    const i = this.index.indexOf(seq);
    if (name === undefined) {
      let rec: JournalRecord;
      try {
        rec = await this.locator.readRecord(this.index.segs[i]!, this.index.pos[i]!);
      } catch (err) {
        const len = await this.locator.payloadLength(this.index.segs[i]!, this.index.pos[i]!).catch(() => -1);
        this.learnUnreadableMark(seq, len, err);
        return;
      }
      name = rec.payload.toString('utf8');
    }
    if (name.startsWith(RESERVED_MARK_PREFIX)) {
      this.learnResendMark(seq, name);
      return;
    }
    if (!this.markBook.get(name) && !this.markBook.isDeleted(name, seq)) {
      // timeOfSeq, not times[i]: the index may have moved while the record was read.
      this.markBook.set(name, { seq, time: this.timeOfSeq(seq) });
      // marks.json only caches what the journal holds (open() learns mark records again),
      // so a failed save loses nothing, and must not stop the append that carried the mark:
      // the next save writes the whole map.
      await this.saveMarks().catch((err: unknown) => this.log.warn('marks.json not saved; the journal keeps the mark and the next save includes it', { mark: name, err }));
    }
  }

  /**
   * A resend span opens at its first BEGIN (a failed resend is followed by another BEGIN:
   * the span stays open from the first) and closes at the next END. An END whose BEGIN
   * was consolidated away closes a span from the checkpoint: the checkpoint was cut inside it.
   * Derived from the journal at open, so nothing else needs persisting.
   */
  private learnResendMark(seq: bigint, name: string): void {
    if (name === RESEND_BEGIN_MARK) {
      // A volume's first entry being a BEGIN (the initial copy of a volume that held data):
      // the empty state before it was never the device's either.
      this.resendOpen ??= seq === 1n && this.ckpt.seq === 0n ? 0n : seq;
    } else if (name === RESEND_END_MARK) {
      // Learned once: a journal reopened after a failed write takes its records in again.
      if (this.resends.some((x) => x.to === seq)) return;
      this.resends.push({ from: this.resendOpen ?? this.ckpt.seq, to: seq });
      this.resendOpen = undefined;
    }
  }

  /**
   * A mark record found at open whose bytes fail their check. Its name is lost, but its
   * length is not (the scan framed the record by it), and taking a resend mark for nothing
   * would let points inside that resend restore a partial copy. So, conservatively:
   * - the length of a BEGIN: a span opens here, to the next readable END (if one is open
   *   already, it stays open);
   * - the length of an END, with no span seen since the checkpoint: it may close a span
   *   whose BEGIN was consolidated away, so [checkpoint, here) is refused;
   * - anything else is a user mark: it is lost (the log says so), nothing is refused.
   */
  private learnUnreadableMark(seq: bigint, payloadLength: number, err: unknown): void {
    this.unreadableMarks.add(seq);
    if (payloadLength === Buffer.byteLength(RESEND_BEGIN_MARK)) {
      this.resendOpen ??= seq;
    } else if (payloadLength === Buffer.byteLength(RESEND_END_MARK) && this.resendOpen === undefined && this.resends.length === 0) {
      this.resends.push({ from: this.ckpt.seq, to: seq });
    }
    this.log.error('a mark record cannot be read; run scrub on this volume', { seq, payloadLength, err });
  }

  /** Refuse a point whose state the collector holds only in part (see resend-marks.ts). */
  private checkExact(p: Point, r: { seq: bigint; time: bigint }): void {
    const span = this.resendOpen !== undefined && r.seq >= this.resendOpen ? { from: this.resendOpen, to: undefined } : this.resends.find((x) => r.seq >= x.from && r.seq < x.to);
    if (!span) return;
    const from = `seq ${span.from} (${formatNs(span.from <= this.ckpt.seq ? this.earliestTime() : this.timeOfSeq(span.from))})`;
    const unreadable = this.unreadableMarks.has(span.from) ? span.from : span.to !== undefined && this.unreadableMarks.has(span.to) ? span.to : undefined;
    const why = unreadable !== undefined
      ? `the mark record at seq ${unreadable} cannot be read (run scrub on volume ${this.name}) and may be where the node ${unreadable === span.from ? 'began' : 'finished'} resending the volume; pick an instant before ${from}${span.to === undefined ? '' : ` or from seq ${span.to} on`}`
      : span.to === undefined
      ? `the node has been resending the volume since ${from} and has not finished; wait for it (rewind status) or pick an instant before it`
      : `the node was resending the volume from ${from} to seq ${span.to} (${formatNs(this.timeOfSeq(span.to))}); pick an instant from the end on, or before the start`;
    throw new RewindError(ErrorCodes.POINT_NOT_EXACT, `volume ${this.name}: ${describePoint(p)} (seq ${r.seq}) is not an exact point: ${why}`, {
      details: { volume: this.name, seq: r.seq, resendFromSeq: span.from, ...(span.to === undefined ? {} : { resendToSeq: span.to }) },
    });
  }

  private saveMarks(): Promise<void> {
    return this.markBook.save(this.ckpt.seq);
  }

  /**
   * Name a point (default: the latest durable state). Idempotent for the same name and
   * point. With an `id`, a mark that already has it is returned as it is (same seq and
   * time, whatever `at` now resolves to), so a caller that retries after a crash — a
   * controller keyed by a RestorePoint's UID — never makes a second mark.
   */
  addMark(name: string, at?: bigint, opts: { id?: string } = {}): Promise<MarkInfo> {
    return this.serial.run(async () => {
      checkUserMarkName(name);
      const id = opts.id || undefined;
      if (id !== undefined) {
        if (id.length > 253) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `mark id must be at most 253 characters (a Kubernetes UID is 36)`);
        const same = this.markBook.byId(id);
        if (same) return { name: same.name, ...same.mark };
      }
      const r = at === undefined ? { seq: this.durableSeq, time: this.timeOfSeq(this.durableSeq) } : this.resolve({ time: at });
      if (at === undefined) this.checkExact({ seq: r.seq }, r);
      const time = at ?? r.time;
      const old = this.markBook.get(name);
      if (old) {
        if (old.seq === r.seq && (id === undefined || old.id === undefined)) {
          if (id === undefined) return { name, ...old };
          // The same mark, now keyed: remember the id so a retry by id finds it.
          return this.saveNewMark(name, { ...old, id }, old);
        }
        const why = old.seq === r.seq ? `with id "${old.id}"` : `seq ${old.seq}`;
        throw new RewindError(ErrorCodes.ALREADY_EXISTS, `volume ${this.name}: mark "${name}" already names ${why}; choose another name or delete it first`, { details: { volume: this.name, mark: name, seq: old.seq, ...(old.id ? { id: old.id } : {}) } });
      }
      return this.saveNewMark(name, { seq: r.seq, time, ...(id ? { id } : {}) });
    });
  }

  private async saveNewMark(name: string, m: { seq: bigint; time: bigint; id?: string }, before?: { seq: bigint; time: bigint; id?: string }): Promise<MarkInfo> {
    this.markBook.set(name, m);
    try {
      await this.saveMarks();
    } catch (err) {
      // Only marks.json holds a mark named here: unsaved, it is not made.
      if (before) this.markBook.set(name, before);
      else this.markBook.forget(name);
      throw fromSystemError(err, `volume ${this.name}: save mark "${name}"`);
    }
    return { name, ...m };
  }

  /**
   * Delete a mark by id (or by name); true when one was deleted, false when none had it
   * (deleting twice succeeds). Gone from marks() and from every point at once; persisted
   * before it returns, also for a mark whose record is in the journal (mark-book.ts).
   */
  deleteMark(key: { id: string } | { name: string }): Promise<boolean> {
    return this.serial.run(async () => {
      const name = 'id' in key ? this.markBook.byId(key.id)?.name : key.name;
      if (name === undefined || !this.markBook.get(name)) return false;
      const m = this.markBook.delete(name)!;
      try {
        await this.saveMarks();
      } catch (err) {
        this.markBook.set(name, m);
        throw fromSystemError(err, `volume ${this.name}: delete mark "${name}"`);
      }
      return true;
    });
  }

  marks(): MarkInfo[] {
    return [...this.markBook.entries()].map(([name, m]) => ({ name, ...m })).sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  }

  window(): { earliest: bigint; latest: bigint; earliestSeq: bigint; latestSeq: bigint } {
    const d = this.durableSeq;
    return { earliest: this.earliestTime(), latest: this.timeOfSeq(d), earliestSeq: this.ckpt.seq, latestSeq: d };
  }

  /**
   * Before any consolidation the history starts when the collector first heard of the
   * volume: an instant before that is unknown, not "all zeros". (Entries stamped earlier —
   * a node's clock ahead of ours — still count: the earliest of the two.)
   */
  private earliestTime(): bigint {
    if (this.ckpt.seq > 0n || this.createdNs === undefined) return this.ckpt.time;
    const created = this.createdNs;
    const first = this.index.count > 0 ? this.index.times[0]! : created;
    return first < created ? first : created;
  }

  private outOfWindow(p: Point): RewindError {
    const w = this.window();
    return new RewindError(ErrorCodes.POINT_OUT_OF_WINDOW, `volume ${this.name}: ${describePoint(p)} is before the restorable window [${formatNs(w.earliest)} (seq ${w.earliestSeq}), ${formatNs(w.latest)} (seq ${w.latestSeq})]; history before it was consolidated or never recorded — pick a later point or a retained mark`, { details: { volume: this.name, earliest: w.earliest, latest: w.latest, earliestSeq: w.earliestSeq, latestSeq: w.latestSeq } });
  }

  /**
   * The state a point names. A time resolves to the newest durable entry at or before it
   * (a time after the latest entry is the latest durable state: the collector knows nothing
   * newer); a time before the checkpoint is out of the window.
   */
  resolve(p: Point): { seq: bigint; time: bigint } {
    const r = this.resolveAny(p);
    this.checkExact(p, r);
    return r;
  }

  /** resolve() without the exactness check: consolidation and retention cut anywhere. */
  private resolveAny(p: Point): { seq: bigint; time: bigint } {
    const d = this.durableSeq;
    if ('mark' in p || 'markId' in p) {
      const m = 'mark' in p ? this.markBook.get(p.mark) : this.markBook.byId(p.markId)?.mark;
      if (!m) throw new RewindError(ErrorCodes.NOT_FOUND, `volume ${this.name} has no ${describePoint(p)}; list marks with status`, { details: { volume: this.name } });
      if (m.seq < this.ckpt.seq) throw this.outOfWindow(p);
      return { seq: m.seq, time: m.time };
    }
    if ('seq' in p) {
      if (p.seq < this.ckpt.seq) throw this.outOfWindow(p);
      if (p.seq > d) throw new RewindError(ErrorCodes.OUT_OF_RANGE, `volume ${this.name}: seq ${p.seq} is not durable yet (latest ${d})`);
      return { seq: p.seq, time: this.timeOfSeq(p.seq) };
    }
    if (p.time < this.earliestTime()) throw this.outOfWindow(p);
    let i = this.index.lastAtOrBefore(p.time);
    const di = this.index.indexOf(d);
    if (i > di) i = di;
    const seq = i < 0 ? this.ckpt.seq : this.index.seqAt(i);
    return { seq, time: this.timeOfSeq(seq) };
  }

  private idx(seq: bigint): number {
    return this.index.indexOf(seq); // -1 for the checkpoint itself
  }

  restore(p: Point, sink: RestoreSink, opts: { changedSince?: Point; onProgress?: (done: bigint, total: bigint) => void } = {}): Promise<{ seq: bigint; time: bigint; bytes: bigint }> {
    return this.history.read(async () => {
      const r = this.resolve(p);
      await this.locator.catchUp(this.index, r.seq);
      const size = Number(this.size);
      let ranges: Array<[number, number]> = [[0, size]];
      let only: Array<[number, number]> | undefined;
      if (opts.changedSince) {
        const c = this.resolve(opts.changedSince);
        const [lo, hi] = c.seq < r.seq ? [c.seq, r.seq] : [r.seq, c.seq];
        ranges = only = diffPlan(this.index, this.idx(lo), this.idx(hi), size).map((e) => [Number(e.offset), Number(e.offset + e.length)]);
      }
      const plan = planImage(this.index, this.idx(r.seq), size, only);
      const bytes = await emitImage({ plan, index: this.index, locator: this.locator, ckpt: this.ckpt, ranges, sink, onProgress: opts.onProgress });
      return { ...r, bytes };
    });
  }

  /**
   * Changed extents between two points, ascending and merged, labelled by the younger
   * point (data, or zero where it was trimmed/zeroed). Candidates come byte-exactly from
   * the log (finer than any block bitmap), so no changed byte is ever missed. With `exact`
   * (default) they are then checked against both images (refineDiff), so the answer equals
   * a byte comparison of the two restored images at 512-byte granularity; `exact: false`
   * skips the reads and may also report bytes rewritten with the value they had.
   */
  diff(a: Point, b: Point, opts: { exact?: boolean } = {}): Promise<DiffExtent[]> {
    return this.history.read(async () => {
      const ra = this.resolve(a);
      const rb = this.resolve(b);
      const [lo, hi] = ra.seq < rb.seq ? [ra.seq, rb.seq] : [rb.seq, ra.seq];
      const size = Number(this.size);
      const candidates = diffPlan(this.index, this.idx(lo), this.idx(hi), size);
      if (opts.exact === false || candidates.length === 0) return candidates;
      await this.locator.catchUp(this.index, hi);
      const only = candidates.map((e) => [Number(e.offset), Number(e.offset + e.length)] as [number, number]);
      return refineDiff({ candidates, olderPlan: planImage(this.index, this.idx(lo), size, only), youngerPlan: planImage(this.index, this.idx(hi), size, only),
        index: this.index, locator: this.locator, ckpt: this.ckpt });
    });
  }

  /** The planner's per-interval activity of the retained history, ascending (planner/activity.ts). */
  activity(): { intervalNs: bigint; intervals: IntervalActivity[] } {
    this.activityLog.catchUp(this.durableSeq);
    return { intervalNs: this.activityLog.intervalNs, intervals: this.activityLog.intervals() };
  }

  async allocated(p: Point): Promise<Extent[]> {
    const r = this.resolve(p);
    return allocatedExtents(planImage(this.index, this.idx(r.seq), Number(this.size)), this.ckpt);
  }

  /**
   * Fold the log up to `upTo` into a new checkpoint and free whole segments below it.
   * Appends go on meanwhile (they only add entries above `upTo`); restores and diffs wait,
   * since the checkpoint and segments they read are swapped at the end.
   */
  consolidate(upTo: Point): Promise<{ checkpointSeq: bigint; freedBytes: number }> {
    return this.history.write(async () => {
      let r = this.resolveAny(upTo);
      // A checkpoint inside a resend still open would take the span's start with it (spans
      // are rebuilt from the journal on open): stop just before it.
      if (this.resendOpen !== undefined && r.seq >= this.resendOpen) r = { seq: this.resendOpen - 1n, time: this.timeOfSeq(this.resendOpen - 1n) };
      if (r.seq <= this.ckpt.seq) return { checkpointSeq: this.ckpt.seq, freedBytes: 0 };
      await this.locator.catchUp(this.index, r.seq);
      const cw = await CheckpointWriter.create(path.join(this.dir, 'checkpoints'), r.seq, this.size);
      let next: Checkpoint;
      try {
        const plan = planImage(this.index, this.idx(r.seq), Number(this.size));
        await emitImage({ plan, index: this.index, locator: this.locator, ckpt: this.ckpt, ranges: [[0, Number(this.size)]],
          sink: async (c) => { if (c.data) await cw.write(c.offset, c.data); } });
        next = await cw.commit(r.seq, r.time);
      } catch (err) {
        await cw.abort();
        throw err;
      }
      const old = this.ckpt;
      this.ckpt = next;
      // The planner's intervals go with the log they describe (DESIGN §3 Planner).
      this.activityLog.catchUp(r.seq);
      this.index.dropThrough(r.seq);
      this.activityLog.dropEndingBy(next.time);
      let freed = await removeCheckpoint(old);
      freed += await this.writer.removeSegmentsBelow(r.seq + 1n);
      await this.locator.prune();
      this.log.info('consolidated', { checkpointSeq: r.seq, freedBytes: freed });
      return { checkpointSeq: r.seq, freedBytes: freed };
    });
  }

  /** Drop expired marks, then consolidate what left the point-in-time window. */
  async applyRetention(nowNs: bigint): Promise<{ checkpointSeq: bigint; freedBytes: number }> {
    const pol = this.opts.retention;
    if (!pol) return { checkpointSeq: this.ckpt.seq, freedBytes: 0 };
    let dropped = false;
    for (const [n, m] of [...this.markBook.entries()]) if (m.time < nowNs - pol.marksNs) this.markBook.forget(n), (dropped = true);
    if (dropped) await this.serial.run(() => this.saveMarks());
    const cutoff = nowNs - pol.pointInTimeNs;
    if (cutoff < this.ckpt.time) return { checkpointSeq: this.ckpt.seq, freedBytes: 0 };
    let atCutoff: bigint;
    try {
      atCutoff = this.resolveAny({ time: cutoff }).seq;
    } catch (err) {
      // The cutoff is before the volume's first entry (a volume younger than its window):
      // nothing to consolidate yet, which is no failure.
      if (isRewindError(err, ErrorCodes.POINT_OUT_OF_WINDOW)) return { checkpointSeq: this.ckpt.seq, freedBytes: 0 };
      throw err;
    }
    const oldest = this.marks()[0]?.seq;
    const target = consolidationTarget({ seqAtCutoff: atCutoff, oldestMarkSeq: oldest, checkpointSeq: this.ckpt.seq });
    return this.consolidate({ seq: target });
  }

  async scrub(): Promise<{ ok: boolean; problems: ScrubProblem[] }> {
    const problems = await scrubVolume(this.name, path.join(this.dir, 'journal'), path.join(this.dir, 'checkpoints'), this.writer.durableSeq);
    return { ok: problems.length === 0, problems };
  }

  /**
   * `resendingSinceSeq`: the node is resending the volume (resend-marks.ts); points from
   * there on are refused until it finishes.
   */
  status(): { name: string; size: bigint; durableSeq: bigint; latestTime: bigint; journalBytes: number; checkpointBytes: number; window: ReturnType<VolumeStore['window']>; marks: number; generation: number; resendingSinceSeq?: bigint; lastRestore?: { fromSeq: bigint; toSeq: bigint } } {
    const w = this.window();
    return { name: this.name, size: this.size, durableSeq: this.durableSeq, latestTime: w.latest, journalBytes: this.writer.bytes,
      checkpointBytes: this.ckpt.extents.reduce((a, e) => a + e[1], 0), window: w, marks: this.markBook.size, generation: this.gen,
      ...(this.resendOpen === undefined ? {} : { resendingSinceSeq: this.resendOpen }),
      ...(this.lastRestore ? { lastRestore: this.lastRestore } : {}) };
  }

  /** Appends already made finish first (so nothing reopens the journal after it closed); later ones are refused. */
  close(): Promise<void> {
    this.closing = true;
    return this.appendTail.then(() => this.serial.run(() => this.history.write(async () => {
      await this.writer.close();
      await this.locator.close();
      await this.activityLog.flush();
    })));
  }
}
