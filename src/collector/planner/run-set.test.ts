import { describe, expect, it } from 'vitest';
import { coarsen, decodeRuns, encodeRuns, RUN_PAGE, RunSet, runBytes, unionBytes } from './run-set.js';

describe('RunSet (first-update map as runs)', () => {
  it('counts only the bytes a write adds, merging overlaps and neighbours', () => {
    const s = new RunSet();
    expect(s.add(0, 4096)).toBe(4096);
    expect(s.add(0, 4096)).toBe(0); // the same block again: no new bit
    expect(s.add(100, 110)).toBe(0);
    expect(s.add(4096, 5000)).toBe(904); // adjacent: one run
    expect(s.add(8192, 9000)).toBe(808);
    expect(s.add(4000, 8500)).toBe(8192 - 5000);
    expect([...s.toRuns()]).toEqual([0, 9000]);
    expect(s.bytes).toBe(9000);
  });

  it('joins runs across page boundaries in the closed form', () => {
    const s = new RunSet();
    s.add(RUN_PAGE - 10, RUN_PAGE + 10);
    s.add(3 * RUN_PAGE - 1, 3 * RUN_PAGE);
    s.add(3 * RUN_PAGE, 3 * RUN_PAGE + 1);
    expect([...s.toRuns()]).toEqual([RUN_PAGE - 10, RUN_PAGE + 10, 3 * RUN_PAGE - 1, 3 * RUN_PAGE + 1]);
  });

  it('agrees with a byte-per-byte set on random extents, and its encoding round-trips', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    const size = 3 * RUN_PAGE;
    for (let round = 0; round < 10; round++) {
      const brute = new Uint8Array(size);
      const s = new RunSet();
      for (let i = 0; i < 60; i++) {
        const a = rnd(size - 1);
        const e = Math.min(size, a + 1 + rnd(round % 2 ? 5000 : 300_000));
        let fresh = 0;
        for (let k = a; k < e; k++) if (!brute[k]) (brute[k] = 1), fresh++;
        expect(s.add(a, e)).toBe(fresh);
      }
      const runs = s.toRuns();
      expect(runBytes(runs)).toBe(brute.reduce((x, y) => x + y, 0));
      for (let i = 0; i < runs.length; i += 2) {
        expect(brute[runs[i]! - 1] ?? 0).toBe(0);
        expect(brute[runs[i]!]).toBe(1);
        expect(brute[runs[i + 1]!] ?? 0).toBe(0);
      }
      expect([...decodeRuns(encodeRuns(runs))]).toEqual([...runs]);
    }
  });

  it('unions maps (the OR over intervals) and coarsens outward', () => {
    const a = Float64Array.from([0, 10, 100, 200]);
    const b = Float64Array.from([5, 20, 150, 300]);
    expect(unionBytes([a, b])).toBe(20 + 200);
    expect(unionBytes([])).toBe(0);
    expect([...coarsen(Float64Array.from([1, 2, 4097, 4098, 9000, 9001]), 4096)]).toEqual([0, 12288]);
    expect(() => decodeRuns([0, 0])).toThrow(RangeError);
  });
});
