import { isDirectPadding, isTornTail, SegmentScanner } from './scan.js';
import { listSegments } from './segment.js';

export interface JournalCorruption {
  segment: string;
  offset: number;
  reason: string;
  detail: string;
  /** Bytes a reader would have to skip to reach the next good record (0 for a seq problem). */
  bytesDropped: number;
}

export interface VerifyReport {
  dir: string;
  segments: number;
  /** Good records (CRC and order checked). */
  records: number;
  /** Total bytes of all segment files. */
  bytes: number;
  firstSeq: bigint | null;
  lastSeq: bigint | null;
  firstTime: bigint | null;
  lastTime: bigint | null;
  /** Torn end of the last segment: EOF for readers, truncated by repair. */
  tornTail?: { segment: string; offset: number; bytes: number; padding: boolean };
  corruptions: JournalCorruption[];
  /** No corruption (a torn tail alone is fine). */
  ok: boolean;
}

/**
 * Check every record of every segment and report ALL problems: after damage the scan
 * resyncs at the next record whose CRC checks, so one bad sector does not hide a second.
 * Never throws for corruption (only for I/O errors such as a missing directory).
 */
export async function verifyJournal(dir: string): Promise<VerifyReport> {
  const segs = await listSegments(dir);
  const rep: VerifyReport = {
    dir, segments: segs.length, records: 0, bytes: 0,
    firstSeq: null, lastSeq: null, firstTime: null, lastTime: null, corruptions: [], ok: true,
  };
  let expect: bigint | null = null;
  let lastTime = 0n;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    rep.bytes += s.size;
    if (expect !== null && s.firstSeq !== expect) {
      rep.corruptions.push({ segment: s.name, offset: 0, reason: 'missing-records', detail: `segment starts at seq ${s.firstSeq}, expected ${expect}`, bytesDropped: 0 });
    }
    expect = s.firstSeq;
    const sc = await SegmentScanner.open(s.path, { resync: true });
    try {
      if (sc.header && sc.header.firstSeq !== s.firstSeq) {
        rep.corruptions.push({ segment: s.name, offset: 0, reason: 'bad-segment-header', detail: `header first seq ${sc.header.firstSeq} does not match the name`, bytesDropped: 0 });
      }
      let seen = 0;
      for (;;) {
        const r = await sc.next();
        // Damage found before this record: report it; the seqs it swallowed are part of it.
        let skipped = false;
        for (; seen < sc.problems.length; seen++) {
          const p = sc.problems[seen];
          if (isTornTail(p, last)) {
            rep.tornTail = { segment: s.name, offset: p.offset, bytes: p.bytesDropped, padding: isDirectPadding(p, sc.fileSize) };
          } else {
            rep.corruptions.push({ segment: s.name, offset: p.offset, reason: p.reason, detail: p.detail, bytesDropped: p.bytesDropped });
            skipped = true;
          }
        }
        if (!r) break;
        const rec = r.record;
        if (rec.seq !== expect && !(skipped && rec.seq > expect)) {
          rep.corruptions.push({ segment: s.name, offset: r.offset, reason: 'bad-seq', detail: `seq ${rec.seq} where ${expect} was expected`, bytesDropped: 0 });
        } else if (rec.time <= lastTime) {
          rep.corruptions.push({ segment: s.name, offset: r.offset, reason: 'bad-time', detail: `time ${rec.time} of seq ${rec.seq} is not after ${lastTime}`, bytesDropped: 0 });
        }
        expect = rec.seq + 1n;
        lastTime = rec.time;
        rep.records++;
        if (rep.firstSeq === null) {
          rep.firstSeq = rec.seq;
          rep.firstTime = rec.time;
        }
        rep.lastSeq = rec.seq;
        rep.lastTime = rec.time;
      }
    } finally {
      await sc.close();
    }
  }
  rep.ok = rep.corruptions.length === 0;
  return rep;
}
