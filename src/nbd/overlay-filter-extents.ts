/**
 * What a copy-on-write overlay holds: sorted, disjoint [start, end) ranges, each either
 * 'data' (read from the overlay file) or 'zero' (trimmed / write-zeroed: reads as zeros).
 * Anything not covered still reads from the base.
 */
export type OverlayKind = 'data' | 'zero';
export interface OverlayRange {
  start: number;
  end: number;
  kind: OverlayKind;
}
export interface OverlayPiece {
  start: number;
  end: number;
  /** null: not in the overlay, read the base. */
  kind: OverlayKind | null;
}

export class OverlayExtents {
  private ranges: OverlayRange[] = [];

  get count(): number {
    return this.ranges.length;
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

  /** Record [start, end) as `kind`, replacing whatever the overlay held there. */
  set(start: number, end: number, kind: OverlayKind): void {
    if (end <= start) return;
    const i = this.firstAfter(start);
    let j = i;
    const repl: OverlayRange[] = [];
    while (j < this.ranges.length && this.ranges[j]!.start < end) {
      const r = this.ranges[j]!;
      if (r.start < start) repl.push({ start: r.start, end: start, kind: r.kind });
      if (r.end > end) repl.push({ start: end, end: r.end, kind: r.kind });
      j++;
    }
    const mid: OverlayRange = { start, end, kind };
    const left = repl.filter((r) => r.end <= start);
    const right = repl.filter((r) => r.start >= end);
    const next = [...left, mid, ...right];
    this.ranges.splice(i, j - i, ...next);
    // Merge neighbours of the same kind that touch, so the map stays small.
    const lo = Math.max(0, i - 1);
    const hi = Math.min(this.ranges.length - 1, i + next.length);
    for (let k = hi; k > lo; k--) {
      const a = this.ranges[k - 1]!;
      const b = this.ranges[k]!;
      if (a.end === b.start && a.kind === b.kind) {
        a.end = b.end;
        this.ranges.splice(k, 1);
      }
    }
  }

  /** Pieces covering [start, end) exactly, in order. */
  pieces(start: number, end: number): OverlayPiece[] {
    const out: OverlayPiece[] = [];
    let at = start;
    for (let i = this.firstAfter(start); i < this.ranges.length && at < end; i++) {
      const r = this.ranges[i]!;
      if (r.start >= end) break;
      if (r.start > at) out.push({ start: at, end: r.start, kind: null });
      const e = Math.min(r.end, end);
      out.push({ start: Math.max(r.start, at), end: e, kind: r.kind });
      at = e;
    }
    if (at < end) out.push({ start: at, end, kind: null });
    return out;
  }

  toArray(): OverlayRange[] {
    return this.ranges.map((r) => ({ ...r }));
  }
}
