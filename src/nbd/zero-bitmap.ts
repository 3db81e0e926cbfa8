import { NBD_STATE_HOLE, NBD_STATE_ZERO } from './constants.js';
import { HOLE_ZERO, ZERO_ONLY, type ZeroRange } from './zero-map.js';

/**
 * What the server KNOWS reads as zero, one bit per granule in two planes: ZERO (reads as
 * zeros) and HOLE (no blocks allocated). A granule not known to be zero is reported as
 * data (flags 0) — always true, merely less precise. Node has no lseek(SEEK_HOLE)
 * binding, so this map is how BLOCK_STATUS stays honest: it starts from what we created
 * (a fresh sparse file is all hole) and follows every write, trim and zero we perform.
 *
 * Updates are conservative: a write clears every granule it touches; a trim/zero marks
 * only granules it covers completely. Bitmaps instead of an interval list because random
 * 4 KiB writes split intervals without end: with the sorted interval list of ZeroMap (still used where
 * ranges are few), fio randwrite
 * QD16 on a fresh 256 MiB export ran 16.2k IOPS / 320 CPU ticks against 20.4k / 271
 * with no map (same run); a bit flip per write costs nothing measurable.
 */
export { HOLE_ZERO, ZERO_ONLY };

/** Bits per plane at most (4 MiB of memory per plane); the granule grows to fit. */
const MAX_BITS = 32 * 1024 * 1024;

export class ZeroBitmap {
  readonly granule: number;
  private readonly zero: Uint32Array;
  private readonly hole: Uint32Array;
  private readonly bits: number;

  constructor(readonly size: number, granule = 4096) {
    let g = granule;
    while (Math.ceil(size / g) > MAX_BITS) g *= 2;
    this.granule = g;
    this.bits = Math.ceil(size / g);
    this.zero = new Uint32Array(Math.ceil(this.bits / 32));
    this.hole = new Uint32Array(Math.ceil(this.bits / 32));
  }

  /** Mark [start, end) as data (flags 0) or zero (ZERO_ONLY / HOLE_ZERO). */
  set(start: number, end: number, flags: number): void {
    if (end <= start) return;
    let first: number;
    let last: number; // exclusive
    if (flags === 0) {
      first = Math.floor(start / this.granule);
      last = Math.ceil(end / this.granule);
    } else {
      first = Math.ceil(start / this.granule);
      last = end >= this.size ? this.bits : Math.floor(end / this.granule);
    }
    last = Math.min(last, this.bits);
    const z = (flags & NBD_STATE_ZERO) !== 0;
    const h = (flags & NBD_STATE_HOLE) !== 0;
    for (let b = first; b < last; ) {
      const w = b >>> 5;
      const lo = b & 31;
      const hi = Math.min(32, lo + (last - b));
      const mask = hi - lo === 32 ? 0xffffffff : (((1 << (hi - lo)) - 1) << lo) >>> 0;
      this.zero[w] = z ? this.zero[w]! | mask : this.zero[w]! & ~mask;
      this.hole[w] = h ? this.hole[w]! | mask : this.hole[w]! & ~mask;
      b += hi - lo;
    }
  }

  private flagsAt(b: number): number {
    const w = b >>> 5;
    const m = 1 << (b & 31);
    return (this.zero[w]! & m ? NBD_STATE_ZERO : 0) | (this.hole[w]! & m ? NBD_STATE_HOLE : 0);
  }

  /** Extents covering [start, end) from its beginning, at most maxExtents of them. */
  query(start: number, end: number, maxExtents = Infinity): ZeroRange[] {
    const out: ZeroRange[] = [];
    end = Math.min(end, this.size);
    let b = Math.floor(start / this.granule);
    let at = start;
    while (at < end && out.length < maxExtents) {
      const f = this.flagsAt(b);
      // Extend the run; whole words that match are skipped 32 granules at a time.
      let n = b + 1;
      const lastBit = Math.ceil(end / this.granule);
      while (n < lastBit) {
        if ((n & 31) === 0 && n + 32 <= lastBit) {
          const w = n >>> 5;
          const zw = f & NBD_STATE_ZERO ? 0xffffffff : 0;
          const hw = f & NBD_STATE_HOLE ? 0xffffffff : 0;
          if (this.zero[w] === zw >>> 0 && this.hole[w] === hw >>> 0) {
            n += 32;
            continue;
          }
        }
        if (this.flagsAt(n) !== f) break;
        n++;
      }
      const runEnd = Math.min(end, n * this.granule);
      out.push({ start: at, end: runEnd, flags: f });
      at = runEnd;
      b = n;
    }
    return out;
  }
}
