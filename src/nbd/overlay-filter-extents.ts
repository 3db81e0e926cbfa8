import { RangeMap } from './range-map.js';

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
  private readonly map = new RangeMap<OverlayKind>();

  get count(): number {
    return this.map.count;
  }

  /** Record [start, end) as `kind`, replacing whatever the overlay held there. */
  set(start: number, end: number, kind: OverlayKind): void {
    this.map.set(start, end, kind);
  }

  /** Pieces covering [start, end) exactly, in order. */
  pieces(start: number, end: number): OverlayPiece[] {
    return this.map.pieces(start, end).map((p) => ({ start: p.start, end: p.end, kind: p.value }));
  }

  toArray(): OverlayRange[] {
    return this.map.toArray().map((r) => ({ start: r.start, end: r.end, kind: r.value }));
  }
}
