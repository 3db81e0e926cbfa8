/**
 * Sorted, disjoint [start, end) ranges each carrying a value; everything else is
 * "unset". Setting a range replaces what was there, and touching neighbours with the same
 * value merge, so the map stays as small as the shape of what was written. Used for what
 * the file backend knows reads as zero and for what a copy-on-write overlay holds.
 */
export interface Range<V> {
  start: number;
  end: number;
  value: V;
}

export class RangeMap<V> {
  private ranges: Array<Range<V>> = [];

  get count(): number {
    return this.ranges.length;
  }

  clear(): void {
    this.ranges = [];
  }

  /** Index of the first range with end > pos (binary search). */
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

  /** Give [start, end) `value`, or unset it with null. */
  set(start: number, end: number, value: V | null): void {
    if (end <= start) return;
    const i = this.firstAfter(start);
    let j = i;
    const left: Array<Range<V>> = [];
    const right: Array<Range<V>> = [];
    while (j < this.ranges.length && this.ranges[j]!.start < end) {
      const r = this.ranges[j]!;
      if (r.start < start) left.push({ start: r.start, end: start, value: r.value });
      if (r.end > end) right.push({ start: end, end: r.end, value: r.value });
      j++;
    }
    const next = value === null ? [...left, ...right] : [...left, { start, end, value }, ...right];
    this.ranges.splice(i, j - i, ...next);
    for (let k = Math.min(i + next.length, this.ranges.length - 1); k > Math.max(0, i - 1); k--) {
      const a = this.ranges[k - 1]!;
      const b = this.ranges[k]!;
      if (a.end === b.start && a.value === b.value) {
        a.end = b.end;
        this.ranges.splice(k, 1);
      }
    }
  }

  /** Pieces covering [start, end) exactly, in order; gaps have value null. */
  pieces(start: number, end: number): Array<Range<V | null>> {
    const out: Array<Range<V | null>> = [];
    let at = start;
    for (let i = this.firstAfter(start); i < this.ranges.length && at < end; i++) {
      const r = this.ranges[i]!;
      if (r.start >= end) break;
      if (r.start > at) out.push({ start: at, end: r.start, value: null });
      const e = Math.min(r.end, end);
      out.push({ start: Math.max(r.start, at), end: e, value: r.value });
      at = e;
    }
    if (at < end) out.push({ start: at, end, value: null });
    return out;
  }

  toArray(): Array<Range<V>> {
    return this.ranges.map((r) => ({ ...r }));
  }
}
