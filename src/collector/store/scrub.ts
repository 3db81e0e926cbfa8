import { crc32c } from '@node-rs/crc32';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { isRewindError } from '../../core/errors.js';
import { isTornTail, SegmentScanner } from '../../journal/scan.js';
import { listSegments } from '../../journal/segment.js';
import { decodeManifest, listCheckpointManifests } from './checkpoint.js';

export interface ScrubProblem {
  volume: string;
  /** Segment or checkpoint file name. */
  segment: string;
  /** Byte offset of the damaged record / extent in that file. */
  offset: number;
  reason: string;
}

/**
 * Audit every CRC of one volume: each journal record (header + payload), each checkpoint
 * manifest and each checkpoint data extent. Reports, never repairs; a problem in the
 * writer's tail segment past the durable seq would have been repaired on open already.
 */
export async function scrubVolume(volume: string, journalDir: string, checkpointDir: string, durableSeq?: bigint): Promise<ScrubProblem[]> {
  const problems: ScrubProblem[] = [];
  const segs = await listSegments(journalDir);
  for (const seg of segs) {
    const sc = await SegmentScanner.open(seg.path, { resync: true });
    const tail = seg === segs[segs.length - 1];
    let lastSeq = seg.firstSeq - 1n;
    try {
      for (let r = await sc.next(); r; r = await sc.next()) lastSeq = r.record.seq; // each CRC-checked by the scanner
      for (const p of sc.problems) {
        // The end of the segment being written may hold a record still in flight, or the
        // zero padding of a direct write (docs/journal-format.md §5): not damage, as long
        // as every durable record came before it.
        if (isTornTail(p, tail) && (durableSeq === undefined || lastSeq >= durableSeq)) continue;
        problems.push({ volume, segment: seg.name, offset: p.offset, reason: `${p.reason}: ${p.detail}` });
      }
    } finally {
      await sc.close();
    }
  }
  for (const mp of await listCheckpointManifests(checkpointDir)) {
    const name = path.basename(mp);
    let extents: Array<[number, number, number]>;
    try {
      extents = decodeManifest(await fsp.readFile(mp, 'utf8'), mp).extents;
    } catch (err) {
      problems.push({ volume, segment: name, offset: 0, reason: isRewindError(err) ? err.message : String(err) });
      continue;
    }
    const img = mp.replace(/\.json$/, '.img');
    const fh = await fsp.open(img, 'r').catch(() => null);
    if (!fh) {
      problems.push({ volume, segment: path.basename(img), offset: 0, reason: 'checkpoint image missing' });
      continue;
    }
    try {
      for (const [off, len, crc] of extents) {
        const b = Buffer.allocUnsafe(len);
        const { bytesRead } = await fh.read(b, 0, len, off);
        const got = crc32c(b.subarray(0, bytesRead));
        if (bytesRead !== len || got !== crc) {
          problems.push({ volume, segment: path.basename(img), offset: off, reason: `bad-crc: extent of ${len} bytes, stored 0x${crc.toString(16)}, computed 0x${got.toString(16)}` });
        }
      }
    } finally {
      await fh.close();
    }
  }
  return problems;
}
