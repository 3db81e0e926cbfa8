import fsp from 'node:fs/promises';
import { decodeRecord, RECORD_HEADER_SIZE, type JournalRecord } from './record.js';
import { decodeSegmentHeader, isAllZero, SEGMENT_HEADER_SIZE, type SegmentHeader } from './segment.js';
import { DIRECT_ALIGN } from './direct-append.js';

/**
 * Streams the records of one segment file with bounded memory: reads 1 MiB chunks (more
 * when a single record is bigger) and hands out payloads as views of the chunk they were
 * read into, never copied. Every chunk is a fresh allocation, so a payload stays valid for
 * as long as the caller keeps it.
 *
 * It does not judge: a bad header/record becomes a `ScanProblem`, and whether that is a torn
 * tail (EOF) or corruption is the caller's call (docs/journal-format.md §"Torn tail vs
 * corruption"). To help the caller decide, a problem carries `nextValid`: the offset of the
 * next record that decodes with a good CRC, or null when nothing valid follows.
 */
const CHUNK = 1024 * 1024;
const MAGIC_BYTES = Buffer.from('RWND', 'latin1');

export interface ScanProblem {
  offset: number;
  reason: 'short' | 'bad-magic' | 'bad-crc' | 'bad-header' | 'bad-segment-header' | 'bad-seq';
  detail: string;
  /** Offset of the next decodable record after `offset`, or null if none (to EOF). */
  nextValid: number | null;
  /** Bytes from `offset` up to `nextValid` (or EOF). */
  bytesDropped: number;
  /** The bytes from `offset` to EOF are all zero (unwritten extent after a crash). */
  zeroTail: boolean;
  /**
   * The damaged record is the last in the file (its declared size reaches EOF) and one of
   * its 512-byte sectors is all zero: a write torn at sector granularity (etcd's rule).
   */
  tornSector: boolean;
}

export interface ScannedRecord {
  record: JournalRecord;
  offset: number;
  size: number;
}

export class SegmentScanner {
  header: SegmentHeader | null = null;
  /** Offset just past the last good record returned so far. */
  validEnd = SEGMENT_HEADER_SIZE;
  readonly problems: ScanProblem[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  private pos = 0;
  private done = false;

  private constructor(
    private readonly fh: fsp.FileHandle,
    readonly fileSize: number,
    /** After a problem, continue at the next valid record (verify) or stop (reader). */
    private readonly resync: boolean,
  ) {}

  /** `startAt`: resume at a record boundary found by an earlier scan (header still checked). */
  static async open(p: string, opts: { resync?: boolean; startAt?: number } = {}): Promise<SegmentScanner> {
    const fh = await fsp.open(p, 'r');
    try {
      const st = await fh.stat();
      const s = new SegmentScanner(fh, st.size, opts.resync ?? false);
      await s.readHeader();
      if (s.header && opts.startAt !== undefined && opts.startAt > SEGMENT_HEADER_SIZE) {
        s.bufStart = s.validEnd = opts.startAt;
      }
      return s;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private async readHeader(): Promise<void> {
    const b = Buffer.alloc(SEGMENT_HEADER_SIZE);
    const { bytesRead } = await this.fh.read(b, 0, SEGMENT_HEADER_SIZE, 0);
    const r = decodeSegmentHeader(b.subarray(0, bytesRead));
    if (r.ok) {
      this.header = r.header;
      this.bufStart = SEGMENT_HEADER_SIZE;
      return;
    }
    const rest = await this.readRange(0, this.fileSize);
    this.problems.push({
      offset: 0,
      // A header cut short, or a bad header with nothing after it, can only be a segment
      // whose creation was interrupted (records go in only after the header is fsynced).
      reason: r.reason === 'short' || this.fileSize <= SEGMENT_HEADER_SIZE ? 'short' : 'bad-segment-header',
      detail: `segment header ${r.reason}: ${r.detail}`,
      nextValid: null,
      bytesDropped: this.fileSize,
      zeroTail: isAllZero(rest),
      tornSector: false,
    });
    this.validEnd = 0;
    this.done = true;
  }

  private async readRange(start: number, end: number): Promise<Buffer> {
    const len = Math.max(0, end - start);
    const b = Buffer.allocUnsafeSlow(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await this.fh.read(b, got, len - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return b.subarray(0, got);
  }

  /** Ensure at least `need` bytes are buffered at `pos`; false if EOF comes first. */
  private async fill(need: number): Promise<boolean> {
    const have = this.buf.length - this.pos;
    if (have >= need) return true;
    const fileOff = this.bufStart + this.pos;
    if (fileOff + need > this.fileSize) return false;
    const want = Math.min(Math.max(need, CHUNK), this.fileSize - fileOff);
    const nb = Buffer.allocUnsafeSlow(want);
    this.buf.copy(nb, 0, this.pos);
    let got = have;
    while (got < want) {
      const { bytesRead } = await this.fh.read(nb, got, want - got, fileOff + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.buf = nb.subarray(0, got);
    this.bufStart = fileOff;
    this.pos = 0;
    return got >= need;
  }

  /** Next good record, or null at EOF / at a problem (see `problems`). */
  async next(): Promise<ScannedRecord | null> {
    while (!this.done) {
      const offset = this.bufStart + this.pos;
      if (offset >= this.fileSize) {
        this.done = true;
        return null;
      }
      await this.fill(RECORD_HEADER_SIZE);
      let r = decodeRecord(this.buf, this.pos);
      if (!r.ok && r.reason === 'short' && r.need > RECORD_HEADER_SIZE) {
        await this.fill(r.need);
        r = decodeRecord(this.buf, this.pos);
      }
      if (r.ok) {
        this.pos += r.size;
        this.validEnd = offset + r.size;
        return { record: r.record, offset, size: r.size };
      }
      await this.recordProblem(offset, r.reason, r.reason === 'short' ? `record needs ${r.need} bytes, ${this.fileSize - offset} left in file` : r.detail);
    }
    return null;
  }

  private async recordProblem(offset: number, reason: ScanProblem['reason'], detail: string): Promise<void> {
    // Only on the error path do we hold the rest of the segment in memory (bounded by the
    // segment size) to look for a record that still decodes after the damage.
    const rest = await this.readRange(offset, this.fileSize);
    // A direct writer rewrites the zero-padded block at the end of the last segment (docs/
    // journal-format.md §6): if the bytes we judged are not the bytes there now, a record
    // was being written over the padding as we read. That is the live end of the log, not
    // damage; judging the new bytes against the old reading would call it corruption.
    const seen = this.buf.subarray(this.pos);
    const same = Math.min(seen.length, rest.length);
    if (rest.length < seen.length || !seen.subarray(0, same).equals(rest.subarray(0, same))) {
      this.problems.push({
        offset, reason: 'short', detail: `${detail}; the bytes there changed while they were read (a record being written)`,
        nextValid: null, bytesDropped: this.fileSize - offset, zeroTail: false, tornSector: false,
      });
      this.done = true;
      return;
    }
    const nv = findNextValid(rest, 1);
    const nextValid = nv < 0 ? null : offset + nv;
    this.problems.push({
      offset,
      reason,
      detail,
      nextValid,
      bytesDropped: (nextValid ?? this.fileSize) - offset,
      zeroTail: isAllZero(rest),
      tornSector: nextValid === null && hasZeroSector(rest, offset),
    });
    if (this.resync && nextValid !== null) {
      this.buf = rest.subarray(nv);
      this.bufStart = nextValid;
      this.pos = 0;
    } else {
      this.done = true;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Offset in `buf` (searching from `from`) of the first record whose CRC checks, or -1. */
export function findNextValid(buf: Buffer, from: number): number {
  let i = from;
  for (;;) {
    i = buf.indexOf(MAGIC_BYTES, i);
    if (i < 0) return -1;
    const r = decodeRecord(buf, i);
    if (r.ok) return i;
    i++;
  }
}

/**
 * The one rule for "torn tail" (docs/journal-format.md): damage in the LAST segment after
 * which no record decodes, and which looks like an interrupted write — the file ends inside
 * a record (short), or everything from the damage to EOF is zero (an extent the filesystem
 * allocated but never wrote before the crash). Everything else is corruption.
 */
export function isTornTail(p: ScanProblem, lastSegment: boolean): boolean {
  return lastSegment && p.nextValid === null && (p.reason === 'short' || p.zeroTail || p.tornSector);
}

/**
 * A torn tail that is only a direct writer's padding: zeros after the last record up to the
 * 4096-byte boundary the file ends on (docs/journal-format.md §6).
 */
export function isDirectPadding(p: ScanProblem, fileSize: number): boolean {
  return p.zeroTail && p.nextValid === null && fileSize % DIRECT_ALIGN === 0 && fileSize - p.offset < DIRECT_ALIGN;
}

/** `rest` starts at file offset `at` and runs to EOF; is the record there torn by sectors? */
function hasZeroSector(rest: Buffer, at: number): boolean {
  if (rest.length < RECORD_HEADER_SIZE) return false;
  const declared = RECORD_HEADER_SIZE + rest.readUInt32LE(8);
  if (declared !== rest.length) return false;
  const SECTOR = 512;
  for (let s = Math.ceil(at / SECTOR) * SECTOR; s < at + rest.length; s += SECTOR) {
    if (isAllZero(rest.subarray(s - at, Math.min(s + SECTOR, at + rest.length) - at))) return true;
  }
  return false;
}
