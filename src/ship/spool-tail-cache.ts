import { RECORD_HEADER_SIZE, type JournalRecord } from '../journal/record.js';

/**
 * The newest spool entries, kept in memory so the shipper reads them without touching the
 * disk and without waiting for the journal write. It holds the payload buffers the NBD
 * writes came in (a buffered journal writer holds the same ones until written; a direct one
 * has copied them); written entries are evicted oldest first past `limit` bytes, and acked
 * ones at once. Entries not yet written are never evicted (the disk could not serve them yet).
 */
export class SpoolTailCache {
  private recs: JournalRecord[] = [];
  private head = 0;
  private bytes = 0;

  constructor(private readonly limit = 32 * 1024 * 1024) {}

  get firstSeq(): bigint | null {
    return this.head < this.recs.length ? this.recs[this.head].seq : null;
  }

  /** False when nothing reads it (limit 0: nothing ships); it then holds nothing. */
  get enabled(): boolean {
    return this.limit > 0;
  }

  push(rec: JournalRecord, writtenSeq: bigint): void {
    // Readers never see past the written seq, so without a reader nothing needs holding.
    if (this.limit === 0) return;
    this.recs.push(rec);
    this.bytes += RECORD_HEADER_SIZE + rec.payload.length;
    while (this.bytes > this.limit && this.head < this.recs.length && this.recs[this.head].seq <= writtenSeq) this.evictOne();
    this.compact();
  }

  dropThrough(seq: bigint): void {
    while (this.head < this.recs.length && this.recs[this.head].seq <= seq) this.evictOne();
    this.compact();
  }

  /** Append entries from seq `from` to `out` within the limits (`bytes` already used). */
  take(from: bigint, out: JournalRecord[], maxRecords: number, maxBytes: number, bytes: number): void {
    const first = this.firstSeq;
    if (first === null || from < first) return;
    for (let i = this.head + Number(from - first); i < this.recs.length && out.length < maxRecords; i++) {
      const size = RECORD_HEADER_SIZE + this.recs[i].payload.length;
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push(this.recs[i]);
      bytes += size;
    }
  }

  private evictOne(): void {
    this.bytes -= RECORD_HEADER_SIZE + this.recs[this.head].payload.length;
    this.head++;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.recs.length) {
      this.recs = this.recs.slice(this.head);
      this.head = 0;
    }
  }
}
