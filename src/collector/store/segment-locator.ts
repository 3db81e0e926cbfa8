import fsp, { type FileHandle } from 'node:fs/promises';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { RECORD_HEADER_SIZE, RECORD_MAGIC, decodeRecord, recordCrc, type JournalRecord, type RecordKind } from '../../journal/record.js';
import { SEGMENT_HEADER_SIZE, listSegments } from '../../journal/segment.js';
import type { EntryIndex } from './entry-index.js';

interface Seg {
  path: string;
  name: string;
  firstSeq: bigint;
  /** Bytes scanned so far (header included). */
  scanned: number;
  gone: boolean;
}

const SCAN_CHUNK = 1 << 20;

/**
 * Random access into the journal's segment files (same format, read with its
 * constants and `decodeRecord`): scans record headers to learn where each seq lives, and
 * reads payload slices by position. It never writes; the JournalWriter owns the files.
 */
export class SegmentLocator {
  private readonly segs: Seg[] = [];
  private readonly byName = new Map<string, number>();
  private readonly handles = new Map<number, Promise<FileHandle>>();

  constructor(private readonly dir: string) {}

  segmentName(seg: number): string {
    return this.segs[seg]?.name ?? '?';
  }

  /**
   * Scan new bytes of every segment up to `limitSeq`, pushing unknown entries into `index`
   * and locating known ones. Headers only: CRCs are checked by restore's full reads and by
   * scrub, not here (the open-time scan must not cost a read of all history).
   */
  async catchUp(index: EntryIndex, limitSeq: bigint): Promise<void> {
    for (const f of await listSegments(this.dir)) {
      if (!this.byName.has(f.name)) {
        this.byName.set(f.name, this.segs.length);
        this.segs.push({ path: f.path, name: f.name, firstSeq: f.firstSeq, scanned: SEGMENT_HEADER_SIZE, gone: false });
      }
    }
    for (let s = 0; s < this.segs.length; s++) {
      const seg = this.segs[s]!;
      if (seg.gone) continue;
      const next = this.segs.slice(s + 1).find((x) => !x.gone);
      // A sealed segment whose successor starts at or below the index base holds nothing we need.
      if (next && next.firstSeq <= index.baseSeq && seg.scanned === SEGMENT_HEADER_SIZE) continue;
      if (seg.firstSeq > limitSeq) break;
      await this.scanSegment(s, index, limitSeq);
    }
  }

  private async scanSegment(s: number, index: EntryIndex, limitSeq: bigint): Promise<void> {
    const seg = this.segs[s]!;
    const fh = await this.handle(s);
    const size = (await fh.stat()).size;
    const buf = Buffer.allocUnsafe(SCAN_CHUNK);
    let bufStart = 0;
    let bufLen = 0;
    let pos = seg.scanned;
    let lastTotal = 0;
    while (pos + RECORD_HEADER_SIZE <= size) {
      if (pos < bufStart || pos + RECORD_HEADER_SIZE > bufStart + bufLen) {
        bufStart = pos;
        // Behind big records, read just a header's neighbourhood: reading 1 MiB per 256 KiB
        // record re-read all of history (4 GiB: 1.6 s to open); small records share a chunk.
        const want = lastTotal > SCAN_CHUNK / 16 ? 4096 : SCAN_CHUNK;
        bufLen = (await fh.read(buf, 0, want, pos)).bytesRead;
        if (bufLen < RECORD_HEADER_SIZE) break;
      }
      const o = pos - bufStart;
      if (buf.readUInt32LE(o) !== RECORD_MAGIC) break; // torn or not yet written: the writer repairs
      const payloadLen = buf.readUInt32LE(o + 8);
      const total = RECORD_HEADER_SIZE + payloadLen;
      if (pos + total > size) break;
      lastTotal = total;
      const seq = buf.readBigUInt64LE(o + 16);
      if (seq > limitSeq) break;
      if (seq >= index.baseSeq) {
        if (seq <= index.lastSeq) index.locate(seq, s, pos);
        else if (seq === index.lastSeq + 1n) {
          index.push({
            seq,
            kind: buf.readUInt8(o + 4) as RecordKind,
            length: buf.readUInt32LE(o + 12),
            time: buf.readBigUInt64LE(o + 24),
            offset: buf.readBigUInt64LE(o + 32),
          }, s, pos);
        } else {
          throw new RewindError(ErrorCodes.JOURNAL_CORRUPT, `segment ${seg.name} at byte ${pos} holds seq ${seq} but seq ${index.lastSeq + 1n} was expected; run scrub and repair the journal`, { details: { segment: seg.name, offset: pos, expected: index.lastSeq + 1n } });
        }
      }
      pos += total;
    }
    seg.scanned = pos;
  }

  private async handle(s: number): Promise<FileHandle> {
    // Cache the promise, not the handle: two concurrent readers must not open it twice.
    let h = this.handles.get(s);
    if (!h) {
      h = fsp.open(this.segs[s]!.path, 'r');
      this.handles.set(s, h);
      h.catch(() => this.handles.delete(s));
    }
    return h;
  }

  /** Read `len` payload bytes starting `from` bytes into the payload of the record at (seg, pos). */
  async readSlice(seg: number, pos: number, from: number, len: number, into: Buffer, at: number): Promise<void> {
    const fh = await this.handle(seg);
    const { bytesRead } = await fh.read(into, at, len, pos + RECORD_HEADER_SIZE + from);
    if (bytesRead !== len) {
      throw new RewindError(ErrorCodes.JOURNAL_CORRUPT, `segment ${this.segmentName(seg)} ends inside the record at byte ${pos}; run scrub`, { details: { segment: this.segmentName(seg), offset: pos } });
    }
  }

  /**
   * Read the whole record at (seg, pos), its payload straight into `into` at `at` (one
   * copy, not two), and check its CRC like readRecord. `payloadLen` comes from the index.
   */
  async readPayloadChecked(seg: number, pos: number, payloadLen: number, into: Buffer, at: number): Promise<void> {
    const fh = await this.handle(seg);
    const h = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
    const dst = into.subarray(at, at + payloadLen);
    const { bytesRead } = await fh.readv([h, dst], pos);
    const why =
      bytesRead !== RECORD_HEADER_SIZE + payloadLen ? 'short record'
      : h.readUInt32LE(0) !== RECORD_MAGIC ? 'bad-magic'
      : h.readUInt32LE(8) !== payloadLen ? `payload length ${h.readUInt32LE(8)}, index says ${payloadLen}`
      : recordCrc(h, dst) !== h.readUInt32LE(44) ? 'bad-crc'
      : undefined;
    if (why) throw this.damaged(seg, pos, why);
  }

  private damaged(seg: number, pos: number, why: string): RewindError {
    return new RewindError(ErrorCodes.CHECKSUM_MISMATCH, `journal record in segment ${this.segmentName(seg)} at byte ${pos} is damaged (${why}); run scrub, then restore a point before it or repair the journal`, { details: { segment: this.segmentName(seg), offset: pos } });
  }

  /** Read and CRC-check the whole record at (seg, pos). */
  /** The payload length a record's header states (the open-time scan framed records by it). */
  async payloadLength(seg: number, pos: number): Promise<number> {
    const fh = await this.handle(seg);
    const h = Buffer.alloc(RECORD_HEADER_SIZE);
    const { bytesRead } = await fh.read(h, 0, RECORD_HEADER_SIZE, pos);
    return bytesRead === RECORD_HEADER_SIZE ? h.readUInt32LE(8) : -1;
  }

  async readRecord(seg: number, pos: number): Promise<JournalRecord> {
    const fh = await this.handle(seg);
    const h = Buffer.alloc(RECORD_HEADER_SIZE);
    await fh.read(h, 0, RECORD_HEADER_SIZE, pos);
    const b = Buffer.allocUnsafe(RECORD_HEADER_SIZE + h.readUInt32LE(8));
    await fh.read(b, 0, b.length, pos);
    const r = decodeRecord(b, 0);
    if (!r.ok) throw this.damaged(seg, pos, r.reason === 'short' ? 'short record' : `${r.reason}: ${r.detail}`);
    return r.record;
  }

  /** Forget segments the writer has deleted (after consolidation). */
  async prune(): Promise<void> {
    const live = new Set((await listSegments(this.dir)).map((f) => f.name));
    for (let s = 0; s < this.segs.length; s++) {
      const seg = this.segs[s]!;
      if (!seg.gone && !live.has(seg.name)) {
        seg.gone = true;
        const h = this.handles.get(s);
        this.handles.delete(s);
        await h?.then((fh) => fh.close()).catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    for (const h of this.handles.values()) await h.then((fh) => fh.close()).catch(() => undefined);
    this.handles.clear();
  }
}
