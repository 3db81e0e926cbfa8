import { ErrorCodes, RewindError } from '../../core/errors.js';
import { RecordKind, type JournalRecord } from '../../journal/record.js';

/**
 * In-memory index of the entries after the current checkpoint: seq → {time, kind, offset,
 * length} plus where the record sits on disk (segment, byte position). It is the time→seq
 * index (times are HLC, so non-decreasing in seq order: binary search), and the
 * random-access map restore uses to read payloads walking backwards.
 *
 * Rebuilt on open by scanning segment HEADERS only (48 bytes per record, payloads skipped),
 * so it is not persisted: 4 GiB of 1 MiB writes is 4096 headers; 1 M small writes is a
 * ~50 MB scan of headers. Struct-of-arrays keeps 1 M entries at ~40 MB instead of ~200 MB
 * of objects.
 */
export class EntryIndex {
  /** seq of entry 0; entries are contiguous from here. */
  baseSeq: bigint;
  count = 0;
  times = new BigUint64Array(1024);
  offs = new Float64Array(1024);
  lens = new Uint32Array(1024);
  kinds = new Uint8Array(1024);
  /** Index into the segment table, or -1 while the record's location is not yet scanned. */
  segs = new Int32Array(1024);
  /** Byte position of the record header in its segment. */
  pos = new Float64Array(1024);

  constructor(baseSeq: bigint) {
    this.baseSeq = baseSeq;
  }

  get lastSeq(): bigint {
    return this.baseSeq + BigInt(this.count) - 1n;
  }

  private grow(): void {
    const n = this.times.length * 2;
    const g = <T extends { length: number; set(a: T): void }>(a: T, C: new (n: number) => T): T => {
      const b = new C(n);
      b.set(a);
      return b;
    };
    this.times = g(this.times, BigUint64Array);
    this.offs = g(this.offs, Float64Array);
    this.lens = g(this.lens, Uint32Array);
    this.kinds = g(this.kinds, Uint8Array);
    this.segs = g(this.segs, Int32Array);
    this.pos = g(this.pos, Float64Array);
  }

  push(rec: Pick<JournalRecord, 'seq' | 'time' | 'kind' | 'offset' | 'length'>, seg = -1, pos = 0): void {
    const want = this.baseSeq + BigInt(this.count);
    if (rec.seq !== want) {
      throw new RewindError(ErrorCodes.INTERNAL, `entry index: seq ${rec.seq} where ${want} was expected`, { details: { expected: want } });
    }
    if (this.count === this.times.length) this.grow();
    const i = this.count++;
    this.times[i] = rec.time;
    this.offs[i] = Number(rec.offset);
    this.lens[i] = rec.kind === RecordKind.Mark ? 0 : rec.length;
    this.kinds[i] = rec.kind;
    this.segs[i] = seg;
    this.pos[i] = pos;
  }

  /** Record where entry `seq` sits on disk (filled by the segment scanner). */
  locate(seq: bigint, seg: number, pos: number): void {
    const i = Number(seq - this.baseSeq);
    if (i < 0 || i >= this.count) return;
    this.segs[i] = seg;
    this.pos[i] = pos;
  }

  indexOf(seq: bigint): number {
    return Number(seq - this.baseSeq);
  }

  seqAt(i: number): bigint {
    return this.baseSeq + BigInt(i);
  }

  /** Highest index whose time ≤ t, or -1 if every entry is later. */
  lastAtOrBefore(t: bigint): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.times[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** Drop entries with seq ≤ `seq` (they were folded into a checkpoint). */
  dropThrough(seq: bigint): void {
    const n = Number(seq - this.baseSeq) + 1;
    if (n <= 0) return;
    const keep = Math.max(0, this.count - n);
    const from = this.count - keep;
    this.times.copyWithin(0, from, this.count);
    this.offs.copyWithin(0, from, this.count);
    this.lens.copyWithin(0, from, this.count);
    this.kinds.copyWithin(0, from, this.count);
    this.segs.copyWithin(0, from, this.count);
    this.pos.copyWithin(0, from, this.count);
    this.count = keep;
    this.baseSeq = seq + 1n;
  }
}
