/**
 * A first-update map kept as runs: the set of bytes of a volume written at least once, as
 * sorted disjoint [start, end) runs. It is the seed's PB bit table (one bit per track, set
 * by the FIRST update, untouched by later ones), run-length encoded and at byte grain:
 *
 * - Sparse. A dense bit per 4 KiB block costs 32 MiB per interval for a 1 TiB volume, and
 *   the planner keeps one map per minute of history; runs cost 16 bytes per distinct run.
 * - Byte-exact. Writes are not block aligned (ext4 on small volumes writes 1 KiB blocks,
 *   clients write at any byte) and the shipper coalesces byte-exactly (spool-coalesce.ts),
 *   so "unique bytes" is what coalescing ships at best and never exceeds what was written.
 *
 * While an interval is open, runs live in 1 MiB pages (as coverage.ts does for restore),
 * so an insert costs O(runs in its page), not a memmove of every run of the volume.
 */
export const RUN_PAGE = 1 << 20;

/** Closed form: flat [s0, e0, s1, e1, …], ascending, disjoint, non-adjacent. */
export type Runs = Float64Array;

export class RunSet {
  private readonly pages = new Map<number, number[]>();
  private total = 0;

  /** Bytes in the set. */
  get bytes(): number {
    return this.total;
  }

  /** Add [start, end); returns the bytes that were not in the set before. */
  add(start: number, end: number): number {
    let added = 0;
    let pos = start;
    while (pos < end) {
      const pno = Math.floor(pos / RUN_PAGE);
      const segEnd = Math.min(end, (pno + 1) * RUN_PAGE);
      let page = this.pages.get(pno);
      if (!page) this.pages.set(pno, (page = []));
      added += addToPage(page, pos, segEnd);
      pos = segEnd;
    }
    this.total += added;
    return added;
  }

  addRuns(runs: Runs): number {
    let added = 0;
    for (let i = 0; i < runs.length; i += 2) added += this.add(runs[i]!, runs[i + 1]!);
    return added;
  }

  /** The closed form, with runs that meet at a page boundary joined again. */
  toRuns(): Runs {
    const out: number[] = [];
    for (const pno of [...this.pages.keys()].sort((a, b) => a - b)) {
      const p = this.pages.get(pno)!;
      for (let i = 0; i < p.length; i += 2) {
        if (out.length > 0 && out[out.length - 1] === p[i]) out[out.length - 1] = p[i + 1]!;
        else out.push(p[i]!, p[i + 1]!);
      }
    }
    return Float64Array.from(out);
  }
}

/** Insert [s, e) into one page's sorted flat run list, merging what it touches. */
function addToPage(p: number[], s: number, e: number): number {
  // First run whose end ≥ s (it may touch or overlap [s, e)).
  let lo = 0;
  let hi = p.length >> 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (p[2 * mid + 1]! < s) lo = mid + 1;
    else hi = mid;
  }
  let j = lo;
  let ns = s;
  let ne = e;
  let covered = 0;
  while (j < p.length >> 1 && p[2 * j]! <= e) {
    const rs = p[2 * j]!;
    const re = p[2 * j + 1]!;
    covered += Math.max(0, Math.min(re, e) - Math.max(rs, s));
    if (rs < ns) ns = rs;
    if (re > ne) ne = re;
    j++;
  }
  p.splice(2 * lo, 2 * (j - lo), ns, ne);
  return e - s - covered;
}

export function runBytes(runs: Runs): number {
  let n = 0;
  for (let i = 0; i < runs.length; i += 2) n += runs[i + 1]! - runs[i]!;
  return n;
}

/**
 * Round every run out to multiples of `grain` (then merge): a coarser map that holds every
 * byte the exact one held. The recorder does this to an interval whose map grew past its
 * run budget, so memory stays bounded under heavy random writes; unions over such maps are
 * then upper bounds, and the planner says so.
 */
export function coarsen(runs: Runs, grain: number): Runs {
  const out: number[] = [];
  for (let i = 0; i < runs.length; i += 2) {
    const s = Math.floor(runs[i]! / grain) * grain;
    const e = Math.ceil(runs[i + 1]! / grain) * grain;
    if (out.length > 0 && out[out.length - 1]! >= s) out[out.length - 1] = Math.max(out[out.length - 1]!, e);
    else out.push(s, e);
  }
  return Float64Array.from(out);
}

/** Bytes in the union of several maps (the OR of first-update bitmaps over a window). */
export function unionBytes(maps: Runs[]): number {
  if (maps.length === 0) return 0;
  if (maps.length === 1) return runBytes(maps[0]!);
  const set = new RunSet();
  for (const m of maps) set.addRuns(m);
  return set.bytes;
}

/** Delta encoding for the activity file: [gap, length, gap, length, …] from 0. */
export function encodeRuns(runs: Runs): number[] {
  const out: number[] = new Array<number>(runs.length);
  let prev = 0;
  for (let i = 0; i < runs.length; i += 2) {
    out[i] = runs[i]! - prev;
    out[i + 1] = runs[i + 1]! - runs[i]!;
    prev = runs[i + 1]!;
  }
  return out;
}

export function decodeRuns(deltas: number[]): Runs {
  if (deltas.length % 2 !== 0) throw new RangeError('run list has an odd number of values');
  const out = new Float64Array(deltas.length);
  let prev = 0;
  for (let i = 0; i < deltas.length; i += 2) {
    const gap = deltas[i]!;
    const len = deltas[i + 1]!;
    if (!Number.isSafeInteger(gap) || !Number.isSafeInteger(len) || gap < 0 || len <= 0 || (i > 0 && gap === 0)) throw new RangeError(`run ${i / 2} is not a positive run after a gap`);
    out[i] = prev + gap;
    out[i + 1] = prev + gap + len;
    prev = out[i + 1]!;
  }
  return out;
}
