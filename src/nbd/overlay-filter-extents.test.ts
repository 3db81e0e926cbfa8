import { describe, expect, it } from 'vitest';
import { OverlayExtents } from './overlay-filter-extents.js';

/** Byte-per-position model: 0 = base, 1 = data, 2 = zero. */
function modelPieces(m: Uint8Array, start: number, end: number): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let i = start; i < end; i++) {
    const last = out[out.length - 1];
    if (last && last[2] === m[i] && last[1] === i) last[1] = i + 1;
    else out.push([i, i + 1, m[i]!]);
  }
  return out;
}

describe('overlay extents', () => {
  it('matches a byte model under random overlapping sets and stays merged', () => {
    const N = 4096;
    const m = new Uint8Array(N);
    const ex = new OverlayExtents();
    let s = 12345;
    const rnd = (n: number): number => ((s = (s * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let step = 0; step < 2000; step++) {
      const a = rnd(N);
      const b = Math.min(N, a + 1 + rnd(300));
      const kind = rnd(2) === 0 ? 'data' : 'zero';
      ex.set(a, b, kind);
      m.fill(kind === 'data' ? 1 : 2, a, b);
      if (step % 97 === 0) {
        const q0 = rnd(N);
        const q1 = Math.min(N, q0 + 1 + rnd(1000));
        const got = ex.pieces(q0, q1).map((p) => [p.start, p.end, p.kind === null ? 0 : p.kind === 'data' ? 1 : 2]);
        expect(got).toEqual(modelPieces(m, q0, q1));
      }
    }
    const arr = ex.toArray();
    for (let i = 1; i < arr.length; i++) {
      expect(arr[i]!.start).toBeGreaterThanOrEqual(arr[i - 1]!.end);
      if (arr[i]!.start === arr[i - 1]!.end) expect(arr[i]!.kind).not.toBe(arr[i - 1]!.kind);
    }
    expect(ex.pieces(0, N).map((p) => [p.start, p.end, p.kind === null ? 0 : p.kind === 'data' ? 1 : 2])).toEqual(modelPieces(m, 0, N));
  });
});
