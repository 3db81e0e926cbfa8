import { describe, expect, it } from 'vitest';
import { HOLE_ZERO, ZERO_ONLY, ZeroBitmap } from './zero-bitmap.js';

const K = 4096;
const runs = (m: ZeroBitmap, s: number, e: number) => m.query(s, e).map((r) => [r.start, r.end, r.flags]);

describe('zero bitmap', () => {
  it('tracks holes, writes and zeroed ranges, and reports unknown as data', () => {
    const m = new ZeroBitmap(1000 * K);
    expect(runs(m, 0, 1000 * K)).toEqual([[0, 1000 * K, 0]]);
    m.set(0, 1000 * K, HOLE_ZERO);
    m.set(100 * K, 200 * K, 0);
    m.set(150 * K, 160 * K, ZERO_ONLY);
    expect(runs(m, 0, 1000 * K)).toEqual([
      [0, 100 * K, HOLE_ZERO], [100 * K, 150 * K, 0], [150 * K, 160 * K, ZERO_ONLY], [160 * K, 200 * K, 0], [200 * K, 1000 * K, HOLE_ZERO],
    ]);
    expect(runs(m, 50, 60)).toEqual([[50, 60, HOLE_ZERO]]);
  });

  it('is conservative at granule edges: a write taints its granule, a zero must cover one fully', () => {
    const m = new ZeroBitmap(10 * K);
    m.set(0, 10 * K, HOLE_ZERO);
    m.set(K + 1, K + 2, 0); // one byte
    expect(runs(m, 0, 3 * K)).toEqual([[0, K, HOLE_ZERO], [K, 2 * K, 0], [2 * K, 3 * K, HOLE_ZERO]]);
    m.set(K + 100, 3 * K, ZERO_ONLY); // does not cover granule 1 fully
    expect(runs(m, K, 3 * K)).toEqual([[K, 2 * K, 0], [2 * K, 3 * K, ZERO_ONLY]]);
  });

  it('handles an unaligned export size and caps the number of extents', () => {
    const m = new ZeroBitmap(5 * K + 123);
    m.set(0, 5 * K + 123, ZERO_ONLY);
    expect(runs(m, 0, 5 * K + 123)).toEqual([[0, 5 * K + 123, ZERO_ONLY]]);
    for (let i = 0; i < 5; i += 2) m.set(i * K, i * K + 1, 0);
    expect(m.query(0, 5 * K + 123, 2)).toHaveLength(2);
  });
});

