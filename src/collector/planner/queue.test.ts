import { describe, expect, it } from 'vitest';
import { drainSeconds, maxLag, requiredBandwidth, requiredBandwidthExact, simulateQueue, type Slot } from './queue.js';

/**
 * Brute force, per byte: byte k of a slot of a bytes and d seconds arrives at k+1 / a of the
 * way through it; a FIFO link sends one byte every 1/B seconds. Returns the largest wait.
 */
function bruteMaxWait(slots: Slot[], b: number): number {
  let t0 = 0;
  let lastDep = 0;
  let worst = 0;
  for (const s of slots) {
    for (let k = 0; k < s.bytes; k++) {
      const arr = t0 + ((k + 1) * s.seconds) / s.bytes;
      const dep = Math.max(arr, lastDep) + 1 / b;
      worst = Math.max(worst, dep - arr);
      lastDep = dep;
    }
    t0 += s.seconds;
  }
  return worst;
}

function rng(seed: number) {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('shipping queue simulation', () => {
  // Four 10 s intervals: 1000 B, nothing, 3000 B, nothing.
  const hand: Slot[] = [{ seconds: 10, bytes: 1000 }, { seconds: 10, bytes: 0 }, { seconds: 10, bytes: 3000 }, { seconds: 10, bytes: 0 }];

  it('gives the lag curve a hand computation gives', () => {
    // At 100 B/s: the first interval drains as it fills; the third leaves 2000 B (20 s of lag), then 1000 B.
    const r = simulateQueue(hand, 100);
    expect(r.curve.map((p) => [p.t, p.queuedBytes, p.lagSeconds])).toEqual([[10, 0, 0], [20, 0, 0], [30, 2000, 20], [40, 1000, 10]]);
    expect(r).toMatchObject({ maxLagSeconds: 20, maxQueuedBytes: 2000, finalQueuedBytes: 1000 });
    expect(simulateQueue(hand, 0).maxLagSeconds).toBe(Infinity);
    expect(simulateQueue([], 10).maxLagSeconds).toBe(0);
  });

  it('finds the least bandwidth for an RPO: 200 B/s keeps a 5 s target (3000 B against 10 s + 5 s)', () => {
    expect(requiredBandwidthExact(hand, 5)).toBe(200);
    const b = requiredBandwidth(hand, 5);
    expect(b).toBeCloseTo(200, 9);
    expect(maxLag(hand, b)).toBeLessThanOrEqual(5);
    expect(maxLag(hand, b * 0.98)).toBeGreaterThan(5);
    expect(requiredBandwidth([{ seconds: 10, bytes: 0 }], 5)).toBe(0);
  });

  it('agrees with a per-byte brute-force replay on random series', () => {
    const r = rng(42);
    for (let round = 0; round < 40; round++) {
      const slots: Slot[] = Array.from({ length: 5 + Math.floor(r() * 30) }, () => ({
        seconds: 1 + Math.floor(r() * 10),
        bytes: r() < 0.3 ? 0 : Math.floor(r() * 3000),
      }));
      const total = slots.reduce((a, s) => a + s.bytes, 0);
      const dur = slots.reduce((a, s) => a + s.seconds, 0);
      const b = (total / dur) * (0.5 + r() * 2) + 1;
      const sim = simulateQueue(slots, b).maxLagSeconds;
      // The brute force sends whole bytes (one service time 1/B each) and sees arrivals
      // one byte apart: it may differ from the fluid model by about a byte's time.
      const tol = 2 / b + Math.max(...slots.filter((s) => s.bytes > 0).map((s) => s.seconds / s.bytes), 0);
      expect(Math.abs(bruteMaxWait(slots, b) - sim)).toBeLessThanOrEqual(tol);

      const rpo = 1 + r() * 20;
      const need = requiredBandwidth(slots, rpo);
      expect(need).toBeCloseTo(requiredBandwidthExact(slots, rpo), 6);
      if (total > 0) {
        expect(maxLag(slots, need)).toBeLessThanOrEqual(rpo);
        expect(maxLag(slots, need * 0.98)).toBeGreaterThan(rpo);
        // And the byte-level replay agrees on both sides of it, within its granularity.
        expect(bruteMaxWait(slots, need)).toBeLessThanOrEqual(rpo + 2 / need + tol);
      }
    }
  });

  it('drains a resync backlog while writes go on, and says when it never catches up', () => {
    // 1000 B behind, link 100 B/s, then 10 s at 50 B/s: the queue shrinks 50 B/s → 20 s, past the series at mean 50 B/s.
    expect(drainSeconds(1000, [{ seconds: 10, bytes: 500 }], 100, 50)).toBe(20);
    expect(drainSeconds(300, [{ seconds: 10, bytes: 500 }], 100, 50)).toBe(6);
    expect(drainSeconds(1000, [{ seconds: 10, bytes: 500 }], 40, 50)).toBeNull();
    expect(drainSeconds(0, [], 0, 0)).toBe(0);
  });
});
