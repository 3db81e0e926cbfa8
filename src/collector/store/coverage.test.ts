import { describe, expect, it } from 'vitest';
import { Coverage, COVERAGE_PAGE, GAP } from './coverage.js';

describe('Coverage', () => {
  it('gives each byte to the first claimant and reports only newly claimed bytes', () => {
    const c = new Coverage(10_000);
    expect(c.claim(100, 200, 1)).toBe(100);
    expect(c.claim(150, 300, 2)).toBe(100); // [200, 300) is new
    expect(c.claim(0, 1000, 3)).toBe(800);
    expect([...c.pieces()]).toEqual([
      { start: 0, end: 100, src: 3 },
      { start: 100, end: 200, src: 1 },
      { start: 200, end: 300, src: 2 },
      { start: 300, end: 1000, src: 3 },
    ]);
  });

  it('walks gaps between pieces and knows when the volume is full', () => {
    const c = new Coverage(1000);
    c.claim(10, 20, 7);
    expect([...c.walk()]).toEqual([
      { start: 0, end: 10, src: GAP },
      { start: 10, end: 20, src: 7 },
      { start: 20, end: 1000, src: GAP },
    ]);
    expect(c.full).toBe(false);
    c.claim(0, 5000, 8); // clipped to the size
    expect(c.full).toBe(true);
    expect(c.covered).toBe(1000);
  });

  it('handles extents that cross page boundaries at unaligned bytes', () => {
    const size = 3 * COVERAGE_PAGE + 17;
    const c = new Coverage(size);
    const a = COVERAGE_PAGE - 3;
    expect(c.claim(a, a + 10, 1)).toBe(10);
    expect(c.claim(a - 5, 2 * COVERAGE_PAGE + 1, 2)).toBe(COVERAGE_PAGE + 9 - 10) // length P+9, minus the 10 already owned;
    const pieces = [...c.walk()];
    // Contiguous, ascending, covering [0, size).
    let pos = 0;
    for (const p of pieces) {
      expect(p.start).toBe(pos);
      pos = p.end;
    }
    expect(pos).toBe(size);
  });

  it('matches a byte-array reference on a random history', () => {
    const size = 2 * COVERAGE_PAGE + 999;
    const ref = new Int32Array(size).fill(GAP);
    const c = new Coverage(size);
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let i = 0; i < 400; i++) {
      const len = 1 + rnd(70_000);
      const off = rnd(size - len);
      let fresh = 0;
      for (let b = off; b < off + len; b++) if (ref[b] === GAP) (ref[b] = i), fresh++;
      expect(c.claim(off, off + len, i)).toBe(fresh);
    }
    const got = new Int32Array(size).fill(GAP);
    for (const p of c.pieces()) got.fill(p.src, p.start, p.end);
    expect(Buffer.from(got.buffer).equals(Buffer.from(ref.buffer))).toBe(true);
  });
});
