import { RecordKind } from '../../journal/record.js';
import type { EntryIndex } from './entry-index.js';

/**
 * Changed-block bitmaps (the "collector and reporter" of DESIGN §1): for each interval of
 * `intervalNs` that saw entries, one bit per `blockSize` block set by the FIRST update of
 * that block in the interval, with the bytes written, so the planner can tell written from
 * unique bytes (what coalescing saves) and OR intervals over any window.
 *
 * They are derived from the entry index on demand rather than persisted: the index already
 * holds every entry's extent, a bitmap pass is O(entries in range), and a persisted copy
 * would be one more thing to keep consistent across consolidation. Diff does not use them:
 * it walks the same extents byte-exactly, which is finer than any block bitmap.
 */
export interface IntervalBitmap {
  /** Interval start (ns, a multiple of intervalNs). */
  start: bigint;
  entries: number;
  writtenBytes: number;
  uniqueBlocks: number;
  bitmap: Uint8Array;
}

export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

/** Set the bits of blocks touched by [off, off+len); returns how many were newly set. */
export function markExtent(bitmap: Uint8Array, off: number, len: number, blockSize: number): number {
  if (len <= 0) return 0;
  let fresh = 0;
  const last = Math.floor((off + len - 1) / blockSize);
  for (let b = Math.floor(off / blockSize); b <= last; b++) {
    const m = 1 << (b & 7);
    if ((bitmap[b >>> 3]! & m) === 0) {
      bitmap[b >>> 3]! |= m;
      fresh++;
    }
  }
  return fresh;
}

/** Bitmaps of the entries with index in [from, to], one per non-empty interval, ascending. */
export function intervalBitmaps(index: EntryIndex, from: number, to: number, size: number, blockSize: number, intervalNs: bigint): IntervalBitmap[] {
  const out: IntervalBitmap[] = [];
  const bytes = Math.ceil(blockCount(size, blockSize) / 8);
  let cur: IntervalBitmap | undefined;
  for (let i = Math.max(0, from); i <= to && i < index.count; i++) {
    const kind = index.kinds[i]!;
    if (kind === RecordKind.Mark) continue;
    const t = index.times[i]!;
    const start = t - (t % intervalNs);
    if (!cur || cur.start !== start) {
      cur = { start, entries: 0, writtenBytes: 0, uniqueBlocks: 0, bitmap: new Uint8Array(bytes) };
      out.push(cur);
    }
    cur.entries++;
    cur.writtenBytes += index.lens[i]!;
    cur.uniqueBlocks += markExtent(cur.bitmap, index.offs[i]!, index.lens[i]!, blockSize);
  }
  return out;
}

/** OR of bitmaps (DESIGN §3 Diff: changed blocks over a window). */
export function orBitmaps(maps: Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (const m of maps) for (let i = 0; i < bytes; i++) out[i]! |= m[i]!;
  return out;
}

export function popcount(bitmap: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bitmap.length; i++) {
    let v = bitmap[i]!;
    while (v) {
      v &= v - 1;
      n++;
    }
  }
  return n;
}
