import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, fromSystemError, RewindError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { isDirectPadding, isTornTail, SegmentScanner, type ScanProblem } from './scan.js';
import { truncateDurably } from '../core/atomic-file.js';
import {
  backupCorruptSegment,
  backupTornTail,
  decodeSegmentHeader,
  encodeSegmentHeader,
  fsyncDir,
  listSegments,
  readSegmentHeaderBytes,
  SEGMENT_HEADER_SIZE,
  segmentName,
  type SegmentFile,
} from './segment.js';

/**
 * Recovery on open (what the writer needs to continue appending): check every segment
 * header, scan the LAST segment, repair a torn tail (backup, then truncate) and refuse
 * corruption unless `dropCorrupt`. Only the tail is scanned — a full check of older
 * segments is `verifyJournal`'s job, and would cost a read of the whole spool per open.
 */
export async function openTail(
  dir: string,
  o: { create: boolean; firstSeq: bigint; dropCorrupt: boolean; log: Logger },
): Promise<{ segments: SegmentFile[]; lastSeq: bigint; lastTime: bigint }> {
  if (o.create) {
    await fsp.mkdir(dir, { recursive: true }).catch((err) => {
      throw fromSystemError(err, `create journal directory ${dir}`);
    });
  }
  let segs = await listSegments(dir);
  let nextFirst = o.firstSeq;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    const hb = await readSegmentHeaderBytes(s.path);
    const h = decodeSegmentHeader(hb);
    if (h.ok && h.header.firstSeq === s.firstSeq) continue;
    const whole = last ? await fsp.readFile(s.path) : null;
    if (last && whole && (whole.length <= SEGMENT_HEADER_SIZE || whole.every((b) => b === 0))) {
      // Interrupted rotation: the header never became durable, so no record is in it.
      const bak = await backupTornTail(s.path, 0);
      await fsp.unlink(s.path);
      await fsyncDir(dir);
      o.log.warn('removed a half-created journal segment (torn header)', { segment: s.name, bytes: whole.length, backup: bak });
      nextFirst = s.firstSeq;
      segs = segs.slice(0, i);
      break;
    }
    throw new RewindError(ErrorCodes.JOURNAL_CORRUPT, `journal ${dir}: segment ${s.name} has a bad header (${h.ok ? `firstSeq ${h.header.firstSeq} does not match its name` : h.detail}); run \`rewind journal verify\` and repair from a backup`, {
      details: { segment: s.name, offset: 0, bytesDropped: s.size },
    });
  }
  if (segs.length === 0) {
    if (!o.create) throw new RewindError(ErrorCodes.NOT_FOUND, `no journal segments in ${dir}; pass create: true to start a new journal`);
    const p = path.join(dir, segmentName(nextFirst));
    const fh = await fsp.open(p, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o644);
    try {
      await fh.write(encodeSegmentHeader({ firstSeq: nextFirst, createdNs: BigInt(Date.now()) * 1_000_000n }), 0, SEGMENT_HEADER_SIZE, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(dir);
    return { segments: [{ name: segmentName(nextFirst), path: p, firstSeq: nextFirst, size: SEGMENT_HEADER_SIZE }], lastSeq: nextFirst - 1n, lastTime: 0n };
  }

  const tail = segs[segs.length - 1];
  const t = await scanTail(tail);
  if (t.problem) {
    const p = t.problem;
    const torn = isTornTail(p, true);
    if (!torn && !o.dropCorrupt) {
      throw new RewindError(ErrorCodes.JOURNAL_CORRUPT, `journal ${dir}: corruption in ${tail.name} at offset ${p.offset} (${p.reason}: ${p.detail}), ${p.bytesDropped} bytes affected; run \`rewind journal verify\`, then repair with --drop-corrupt to keep the prefix`, {
        details: { segment: tail.name, offset: p.offset, bytesDropped: p.bytesDropped, reason: p.reason },
      });
    }
    // A direct writer's zero padding (up to the next 4096-byte boundary after the last
    // record; docs/journal-format.md §6) is what every unclean stop leaves: truncate it
    // without copying the whole segment aside each time.
    if (torn && isDirectPadding(p, tail.size)) {
      await truncateDurably(tail.path, p.offset);
      o.log.info('dropped the zero padding after the last journal record', { segment: tail.name, offset: p.offset, bytes: tail.size - p.offset });
      tail.size = p.offset;
      return finishOpen(dir, segs, tail, t);
    }
    const bak = torn ? await backupTornTail(tail.path, p.offset) : await backupCorruptSegment(tail.path);
    await truncateDurably(tail.path, p.offset);
    const dropped = tail.size - p.offset;
    (torn ? o.log.warn : o.log.error)(torn ? 'truncated a torn journal tail' : 'dropped corrupt journal records (dropCorrupt)', {
      segment: tail.name, offset: p.offset, bytesDropped: dropped, reason: p.reason, backup: bak,
    });
    tail.size = p.offset;
  }
  return finishOpen(dir, segs, tail, t);
}

async function finishOpen(
  dir: string,
  segs: SegmentFile[],
  tail: SegmentFile,
  t: { lastSeq: bigint | null; lastTime: bigint },
): Promise<{ segments: SegmentFile[]; lastSeq: bigint; lastTime: bigint }> {
  let lastTime = t.lastTime;
  if (t.lastSeq === null && segs.length > 1) {
    // The tail has only its header (rotation happened, then the crash): the previous
    // segment's last record holds lastTime. Rare, so a full scan is fine.
    const prev = await scanTail(segs[segs.length - 2]);
    if (prev.problem || prev.lastSeq !== tail.firstSeq - 1n) {
      throw new RewindError(ErrorCodes.JOURNAL_CORRUPT, `journal ${dir}: segment ${segs[segs.length - 2].name} does not end at seq ${tail.firstSeq - 1n}; run \`rewind journal verify\``, {
        details: { segment: segs[segs.length - 2].name, offset: prev.problem?.offset ?? 0, bytesDropped: prev.problem?.bytesDropped ?? 0 },
      });
    }
    lastTime = prev.lastTime;
  }
  return { segments: segs, lastSeq: t.lastSeq ?? tail.firstSeq - 1n, lastTime };
}

/** Scan a whole segment, checking seq continuity and strictly increasing time too. */
async function scanTail(s: SegmentFile): Promise<{ lastSeq: bigint | null; lastTime: bigint; problem: ScanProblem | null }> {
  const sc = await SegmentScanner.open(s.path);
  let lastSeq: bigint | null = null;
  let lastTime = 0n;
  try {
    for (;;) {
      const r = await sc.next();
      if (!r) break;
      const want: bigint = lastSeq === null ? s.firstSeq : lastSeq + 1n;
      if (r.record.seq !== want || r.record.time <= lastTime) {
        return {
          lastSeq,
          lastTime,
          problem: {
            offset: r.offset, reason: 'bad-seq', nextValid: r.offset, bytesDropped: s.size - r.offset, zeroTail: false, tornSector: false,
            detail: r.record.seq !== want ? `seq ${r.record.seq} where ${want} was expected` : `time ${r.record.time} not after ${lastTime}`,
          },
        };
      }
      lastSeq = r.record.seq;
      lastTime = r.record.time;
    }
  } finally {
    await sc.close();
  }
  return { lastSeq, lastTime, problem: sc.problems[0] ?? null };
}
