import { ErrorCodes, RewindError } from '../core/errors.js';
import type { JournalRecord } from './record.js';
import { isTornTail, SegmentScanner, type ScanProblem } from './scan.js';
import { listSegments, type SegmentFile } from './segment.js';

export interface ReadJournalOptions {
  /** First seq to return (earlier records are skipped; whole earlier segments are not opened). */
  fromSeq?: bigint;
  /** Last seq to return. */
  toSeq?: bigint;
  /** Stop before the first record whose time is > untilTime (point-in-time replay). */
  untilTime?: bigint;
}

/** A record with where it sits, so a caller can resume a later read without rescanning. */
export interface PositionedRecord {
  record: JournalRecord;
  segment: string;
  segmentFirstSeq: bigint;
  offset: number;
  size: number;
}

/** A resume point: the byte offset of record `seq` inside segment `segmentFirstSeq`. */
export interface ReadPosition {
  seq: bigint;
  segmentFirstSeq: bigint;
  offset: number;
}

/**
 * Stream the records of a journal directory in seq order, one segment at a time, in
 * bounded memory (see SegmentScanner). A torn tail at the end of the LAST segment is EOF;
 * anything else wrong — bad CRC, bad magic, a bad segment header, a missing segment, a seq
 * gap or a seq/time that does not increase — throws REWIND_ERR_JOURNAL_CORRUPT with
 * details { segment, offset, bytesDropped }. Nothing is ever skipped silently.
 */
export async function* readJournal(dir: string, opts: ReadJournalOptions = {}): AsyncIterable<JournalRecord> {
  for await (const p of readJournalPositioned(dir, opts)) yield p.record;
}

export async function* readJournalPositioned(
  dir: string,
  opts: ReadJournalOptions & { position?: ReadPosition } = {},
): AsyncGenerator<PositionedRecord> {
  const segs = await listSegments(dir);
  const from = opts.fromSeq ?? 0n;
  let start = 0;
  // Skip segments whose successor starts at or before fromSeq: all their records are < fromSeq.
  while (start + 1 < segs.length && segs[start + 1].firstSeq <= from) start++;
  let expectSeq: bigint | null = null;
  let lastTime = 0n;
  for (let i = start; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    if (expectSeq !== null && s.firstSeq !== expectSeq) {
      throw corrupt(dir, s, 0, 0, `segment starts at seq ${s.firstSeq} but the previous one ended at ${expectSeq - 1n} (missing segment?)`);
    }
    const pos = opts.position;
    const startAt = pos && pos.segmentFirstSeq === s.firstSeq && pos.seq <= from ? pos.offset : undefined;
    if (startAt !== undefined) expectSeq = pos!.seq;
    const sc = await SegmentScanner.open(s.path, { startAt });
    try {
      if (sc.header && sc.header.firstSeq !== s.firstSeq) {
        throw corrupt(dir, s, 0, s.size, `header says first seq ${sc.header.firstSeq}, name says ${s.firstSeq}`);
      }
      for (;;) {
        const r = await sc.next();
        if (!r) break;
        const rec = r.record;
        const want = expectSeq ?? s.firstSeq;
        if (rec.seq !== want) throw corrupt(dir, s, r.offset, 0, `seq ${rec.seq} where ${want} was expected`);
        if (rec.time <= lastTime) {
          throw corrupt(dir, s, r.offset, 0, `time ${rec.time} of seq ${rec.seq} is not after ${lastTime}`);
        }
        expectSeq = rec.seq + 1n;
        lastTime = rec.time;
        if (rec.seq < from) continue;
        if (opts.toSeq !== undefined && rec.seq > opts.toSeq) return;
        if (opts.untilTime !== undefined && rec.time > opts.untilTime) return;
        yield { record: rec, segment: s.name, segmentFirstSeq: s.firstSeq, offset: r.offset, size: r.size };
        // Stop here rather than read one record more: past toSeq may be a tail still being written.
        if (opts.toSeq !== undefined && rec.seq >= opts.toSeq) return;
      }
      const p: ScanProblem | undefined = sc.problems[0];
      if (p) {
        if (isTornTail(p, last)) return;
        throw corrupt(dir, s, p.offset, p.bytesDropped, `${p.reason}: ${p.detail}`);
      }
      if (expectSeq === null) expectSeq = s.firstSeq;
    } finally {
      await sc.close();
    }
  }
}

function corrupt(dir: string, s: SegmentFile, offset: number, bytesDropped: number, what: string): RewindError {
  return new RewindError(
    ErrorCodes.JOURNAL_CORRUPT,
    `journal ${dir}: ${s.name} at offset ${offset}: ${what}; run \`rewind journal verify\` for a full report, then repair (--drop-corrupt keeps the good prefix)`,
    { details: { segment: s.name, offset, bytesDropped } },
  );
}
