import { EMPTY, RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';

/**
 * Coalescing inside one shipping window (DESIGN §1; Fig. 6 of the first seed): a write /
 * zero / trim whose whole extent is overwritten by LATER entries of the same batch is not
 * shipped with its data.
 *
 * Seq accounting: the dropped entry is replaced by a PLACEHOLDER, a zero-length write
 * (`kind` write, `length` 0, empty payload, same seq/time/offset, flag COALESCED). So the
 * batch keeps every seq, the collector sees no gap, acks stay "highest contiguous seq",
 * and replaying a placeholder writes nothing — the later entries carry the data. What is
 * lost is granularity: restoring an instant between the dropped entry and the one that
 * covered it shows the newer data for that extent.
 *
 * Marks are barriers: an entry is only dropped when covered before the next mark, so a
 * restore to a mark stays exact.
 */
export function coalesceBatch(batch: JournalRecord[]): { records: JournalRecord[]; droppedBytes: number } {
  const out = batch.slice();
  const cover = new IntervalSet();
  let droppedBytes = 0;
  for (let i = out.length - 1; i >= 0; i--) {
    const r = out[i];
    if (r.kind === RecordKind.Mark) {
      cover.clear();
      continue;
    }
    if (r.length === 0) continue;
    const start = Number(r.offset);
    const end = start + r.length;
    if (cover.covers(start, end)) {
      droppedBytes += r.payload.length;
      out[i] = placeholder(r);
    } else {
      cover.add(start, end);
    }
  }
  return { records: out, droppedBytes };
}

export function placeholder(r: JournalRecord): JournalRecord {
  return { kind: RecordKind.Write, flags: RecordFlag.Coalesced, seq: r.seq, time: r.time, offset: r.offset, length: 0, payload: EMPTY };
}

/** Disjoint, sorted, merged half-open intervals [start, end). */
export class IntervalSet {
  private starts: number[] = [];
  private ends: number[] = [];

  clear(): void {
    this.starts = [];
    this.ends = [];
  }

  /** Index of the last interval with start ≤ x, or -1. */
  private floor(x: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] <= x) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  covers(start: number, end: number): boolean {
    const i = this.floor(start);
    return i >= 0 && this.ends[i] >= end;
  }

  add(start: number, end: number): void {
    let i = this.floor(start);
    if (i >= 0 && this.ends[i] >= start) {
      start = this.starts[i];
    } else {
      i++;
    }
    let j = i;
    while (j < this.starts.length && this.starts[j] <= end) {
      end = Math.max(end, this.ends[j]);
      j++;
    }
    this.starts.splice(i, j - i, start);
    this.ends.splice(i, j - i, end);
  }
}
