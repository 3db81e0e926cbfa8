import { NBD_STATE_HOLE, NBD_STATE_ZERO } from './constants.js';
import { RangeMap } from './range-map.js';

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
  /** Values are the flags; flags 0 (data) is stored as unset. */
  private readonly map = new RangeMap<number>();

  constructor(private readonly maxRanges = 200_000) {}

  get size(): number {
    return this.map.count;
  }

  /** Mark [start, end) as data (flags 0) or zero (ZERO_ONLY / HOLE_ZERO). */
  set(start: number, end: number, flags: number): void {
    if (flags === 0 && this.map.count === 0) return; // fast path: nothing known
    this.map.set(start, end, flags === 0 ? null : flags);
    if (this.map.count > this.maxRanges) this.map.clear();
  }

  /** Extents covering [start, end) exactly, gaps reported as data. */
  query(start: number, end: number): ZeroRange[] {
    return this.map.pieces(start, end).map((p) => ({ start: p.start, end: p.end, flags: p.value ?? 0 }));
  }
}
