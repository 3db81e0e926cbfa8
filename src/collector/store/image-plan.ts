import { RecordKind } from '../../journal/record.js';
import type { Checkpoint } from './checkpoint.js';
import { Coverage, GAP } from './coverage.js';
import type { EntryIndex } from './entry-index.js';

/** Piece owner for bytes a trim or write-zeroes made zero. */
export const ZERO_SRC = -2;
/** Piece owner for bytes a partial plan does not care about (never emitted). */
export const OUTSIDE = -3;

/**
 * Who owns each byte of the image as of entry index `upTo` (inclusive; -1 = the checkpoint
 * itself): walk the log backwards from `upTo`, the newest entry to touch a byte wins, stop
 * when every byte is owned or the checkpoint is reached. Each entry is looked at once and
 * each byte claimed once, so restore reads each byte once and a fully overwritten history
 * costs only the header walk, never a payload read.
 */
export function planImage(index: EntryIndex, upTo: number, size: number, only?: Array<[number, number]>): Coverage {
  const cov = new Coverage(size);
  if (only) {
    // Pre-claim everything outside `only` so the walk stops once those bytes are owned
    // (diff refinement needs a few MiB of two images, not two whole-volume plans).
    let pos = 0;
    for (const [s, e] of only) {
      if (s > pos) cov.claim(pos, s, OUTSIDE);
      pos = Math.max(pos, e);
    }
    if (pos < size) cov.claim(pos, size, OUTSIDE);
  }
  for (let i = upTo; i >= 0 && !cov.full; i--) {
    const kind = index.kinds[i]!;
    if (kind === RecordKind.Mark) continue;
    const len = index.lens[i]!;
    if (len === 0) continue;
    const off = index.offs[i]!;
    cov.claim(off, off + len, kind === RecordKind.Write ? i : ZERO_SRC);
  }
  return cov;
}

export interface Extent {
  offset: bigint;
  length: bigint;
}

export type DiffExtent = Extent & { kind: 'data' | 'zero' };

/** Append [start, end) to `out`, merging with the previous extent when they touch. */
function pushMerged<T extends { start: number; end: number }>(out: T[], e: T, same: (a: T, b: T) => boolean): void {
  const last = out[out.length - 1];
  if (last && last.end === e.start && same(last, e)) last.end = e.end;
  else out.push(e);
}

/**
 * Bytes changed between entry indexes `older` (exclusive) and `younger` (inclusive): every
 * byte some entry in between touched, each labelled by what the younger point holds there
 * (the newest entry in the range owns it: a write → data, a trim/zero → zero). Byte-exact,
 * so it never misses a changed byte; a byte rewritten with its old value is reported too.
 */
export function diffPlan(index: EntryIndex, older: number, younger: number, size: number): DiffExtent[] {
  const cov = new Coverage(size);
  for (let i = younger; i > older && !cov.full; i--) {
    const kind = index.kinds[i]!;
    const len = index.lens[i]!;
    if (kind === RecordKind.Mark || len === 0) continue;
    const off = index.offs[i]!;
    cov.claim(off, off + len, kind === RecordKind.Write ? 1 : 0);
  }
  const out: Array<{ start: number; end: number; data: boolean }> = [];
  for (const p of cov.pieces()) pushMerged(out, { start: p.start, end: p.end, data: p.src === 1 }, (a, b) => a.data === b.data);
  return out.map((e) => ({ offset: BigInt(e.start), length: BigInt(e.end - e.start), kind: e.data ? 'data' : 'zero' }));
}

/** Allocated (non-hole) extents of the image described by `plan` over `ckpt`. */
export function allocatedExtents(plan: Coverage, ckpt: Checkpoint): Extent[] {
  const out: Array<{ start: number; end: number }> = [];
  const same = () => true;
  let k = 0;
  const ext = ckpt.extents;
  for (const p of plan.walk()) {
    if (p.src >= 0) pushMerged(out, { start: p.start, end: p.end }, same);
    else if (p.src === GAP) {
      while (k < ext.length && ext[k]![0] + ext[k]![1] <= p.start) k++;
      for (let j = k; j < ext.length && ext[j]![0] < p.end; j++) {
        const s = Math.max(p.start, ext[j]![0]);
        const e = Math.min(p.end, ext[j]![0] + ext[j]![1]);
        if (e > s) pushMerged(out, { start: s, end: e }, same);
      }
    }
  }
  return out.map((e) => ({ offset: BigInt(e.start), length: BigInt(e.end - e.start) }));
}
