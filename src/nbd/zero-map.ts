import { NBD_STATE_HOLE, NBD_STATE_ZERO } from './constants.js';

/**
 * What the server KNOWS reads as zero, as sorted disjoint [start, end) ranges each with
 * base:allocation flags (ZERO, or HOLE|ZERO where the file really has no blocks). A range
 * not in the map is reported as data (flags 0) — always true, merely less precise.
 * Node has no lseek(SEEK_HOLE) binding, so this in-memory map is how BLOCK_STATUS stays
 * honest: it starts from what we created (a fresh sparse file is all hole) and follows
 * every write, trim and zero we perform. If the map grows past `maxRanges` it is
 * forgotten (everything becomes "data"), which bounds memory and stays truthful.
 */
export interface ZeroRange {
  start: number;
  end: number;
  flags: number;
}

export const HOLE_ZERO = NBD_STATE_HOLE | NBD_STATE_ZERO;
export const ZERO_ONLY = NBD_STATE_ZERO;

export class ZeroMap {
  private ranges: ZeroRange[] = [];

  constructor(private readonly maxRanges = 200_000) {}

  get size(): number {
    return this.ranges.length;
  }

  /** Index of the first range with end > pos. */
  private firstAfter(pos: number): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ranges[mid]!.end > pos) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Mark [start, end) as data (flags 0) or zero (ZERO_ONLY / HOLE_ZERO). */
  set(start: number, end: number, flags: number): void {
    if (end <= start) return;
    if (flags === 0 && this.ranges.length === 0) return; // fast path: nothing known
    const i = this.firstAfter(start);
    let j = i;
    const keep: ZeroRange[] = [];
    while (j < this.ranges.length && this.ranges[j]!.start < end) {
      const r = this.ranges[j]!;
      if (r.start < start) keep.push({ start: r.start, end: start, flags: r.flags });
      if (r.end > end) keep.push({ start: end, end: r.end, flags: r.flags });
      j++;
    }
    if (flags !== 0) {
      keep.push({ start, end, flags });
      keep.sort((a, b) => a.start - b.start);
    }
    this.ranges.splice(i, j - i, ...keep);
    this.coalesce(Math.max(0, i - 1), i + keep.length + 1);
    if (this.ranges.length > this.maxRanges) this.ranges = [];
  }

  private coalesce(from: number, to: number): void {
    for (let k = Math.min(to, this.ranges.length - 1); k > from; k--) {
      const a = this.ranges[k - 1]!;
      const b = this.ranges[k]!;
      if (a.end === b.start && a.flags === b.flags) {
        a.end = b.end;
        this.ranges.splice(k, 1);
      }
    }
  }

  /** Extents covering [start, end) exactly, gaps reported as data. */
  query(start: number, end: number): ZeroRange[] {
    const out: ZeroRange[] = [];
    let at = start;
    for (let i = this.firstAfter(start); i < this.ranges.length && at < end; i++) {
      const r = this.ranges[i]!;
      if (r.start >= end) break;
      if (r.start > at) out.push({ start: at, end: r.start, flags: 0 });
      const s = Math.max(r.start, at);
      const e = Math.min(r.end, end);
      out.push({ start: s, end: e, flags: r.flags });
      at = e;
    }
    if (at < end) out.push({ start: at, end, flags: 0 });
    return out;
  }
}
