import { describe, expect, it } from 'vitest';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import { coalesceBatch, IntervalSet } from './spool-coalesce.js';

/** Tiny deterministic PRNG so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe('spool coalescing', () => {
  it('IntervalSet.covers agrees with a byte-map model under random adds', () => {
    const r = rng(7);
    for (let round = 0; round < 50; round++) {
      const set = new IntervalSet();
      const model = new Uint8Array(4096);
      for (let i = 0; i < 40; i++) {
        const a = Math.floor(r() * 4000);
        const b = a + 1 + Math.floor(r() * 200);
        set.add(a, Math.min(b, 4096));
        model.fill(1, a, Math.min(b, 4096));
        const qa = Math.floor(r() * 4000);
        const qb = Math.min(4096, qa + 1 + Math.floor(r() * 100));
        expect(set.covers(qa, qb)).toBe(model.subarray(qa, qb).every((x) => x === 1));
      }
    }
  });

  it('replaying a coalesced batch gives the same image as replaying the batch', () => {
    const r = rng(11);
    for (let round = 0; round < 30; round++) {
      const batch: JournalRecord[] = [];
      for (let i = 1; i <= 60; i++) {
        const seq = BigInt(i);
        if (r() < 0.05) {
          batch.push({ kind: RecordKind.Mark, flags: 0, seq, time: seq, offset: 0n, length: 0, payload: Buffer.from('m') });
          continue;
        }
        const off = Math.floor(r() * 60) * 512;
        const len = (1 + Math.floor(r() * 8)) * 512;
        const kind = r() < 0.8 ? RecordKind.Write : RecordKind.Zero;
        batch.push({ kind, flags: 0, seq, time: seq, offset: BigInt(off), length: len, payload: kind === RecordKind.Write ? Buffer.alloc(len, i) : Buffer.alloc(0) });
      }
      const replay = (recs: JournalRecord[], upTo = recs.length) => {
        const img = Buffer.alloc(70 * 512);
        for (const x of recs.slice(0, upTo)) {
          if (x.kind === RecordKind.Write) x.payload.copy(img, Number(x.offset));
          else if (x.kind === RecordKind.Zero) img.fill(0, Number(x.offset), Number(x.offset) + x.length);
        }
        return img;
      };
      const { records, droppedBytes } = coalesceBatch(batch);
      expect(records.map((x) => x.seq)).toEqual(batch.map((x) => x.seq));
      expect(replay(records).equals(replay(batch))).toBe(true);
      // Exact at every mark (marks are barriers).
      batch.forEach((x, i) => {
        if (x.kind === RecordKind.Mark) expect(replay(records, i + 1).equals(replay(batch, i + 1))).toBe(true);
      });
      const placeholders = records.filter((x) => x.flags & RecordFlag.Coalesced);
      expect(placeholders.every((x) => x.length === 0 && x.payload.length === 0)).toBe(true);
      expect(droppedBytes).toBe(placeholders.reduce((a, x) => a + batch[Number(x.seq) - 1].payload.length, 0));
    }
  });
});
