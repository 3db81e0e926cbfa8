import { describe, expect, it } from 'vitest';
import type { IntervalActivity } from './activity.js';
import { planWindows } from './plan.js';
import { RunSet } from './run-set.js';
import { windowOf, type ActivitySource } from './window.js';

const S = 1_000_000_000n;
const I = 10n * S;
const T0 = 1_800_000_000n * S;

/** An interval of writes [offset, length] at slot k. */
function interval(k: number, writes: Array<[number, number]>): IntervalActivity {
  const set = new RunSet();
  for (const [o, l] of writes) set.add(o, o + l);
  const start = T0 + BigInt(k) * I;
  return { start, end: start + I, firstSeq: 1n, lastSeq: 1n, writeOps: writes.length, writtenBytes: writes.reduce((a, w) => a + w[1], 0),
    zeroOps: 0, zeroedBytes: 0, uniqueBytes: set.bytes, grain: 1, runs: set.toRuns() };
}
function source(name: string, intervals: IntervalActivity[]): ActivitySource {
  return { name, intervalNs: I, intervals, historyStartNs: T0, latestNs: T0 + 39n * S, markTime: () => undefined };
}

// Volume a, four 10 s intervals: block 0 three times; nothing; 8 KiB new plus block 0 again; block 0.
const a = source('a', [interval(0, [[0, 4096], [0, 4096], [0, 4096]]), interval(2, [[4096, 8192], [0, 4096]]), interval(3, [[0, 4096]])]);
// Volume b: the same 8 KiB twice in the second interval.
const b = source('b', [interval(1, [[0, 8192], [0, 8192]])]);

describe('planner math on hand-computed cases', () => {
  it('written vs unique bytes, and the change rates', () => {
    const p = planWindows([windowOf(a, undefined, undefined)]);
    expect(p.window).toEqual({ from: T0, to: T0 + 40n * S, intervalNs: I, intervals: 4, seconds: 40 });
    expect(p.bytes).toEqual({ written: 28672, unique: 12288, uniqueByInterval: 20480, coalescingSavings: 16384, savingsRatio: 16384 / 28672, approximate: false });
    // Per-interval written rates 1228.8, 0, 1228.8, 409.6 B/s.
    expect(p.rates.written).toEqual({ peak: 1228.8, p95: 1228.8, mean: 716.8 });
    expect(p.rates.unique).toEqual({ peak: 1228.8, p95: 1228.8, mean: 512 });
    expect(p.rpo).toBeUndefined();
  });

  it('the bandwidth for a 10 s RPO (12288 B against 10 s + 10 s = 614.4 B/s), its links, and the RPO of a slower link', () => {
    const p = planWindows([windowOf(a, undefined, undefined)], { rpoSeconds: 10, linkBytesPerSecond: 100, bandwidthBytesPerSecond: 409.6 });
    expect(p.rpo!.recommendedBandwidth).toBeCloseTo(614.4, 6);
    expect(p.rpo!.maxLagSeconds).toBeLessThanOrEqual(10);
    expect(p.links).toEqual({ linkBandwidth: 100, count: 7 });
    // 409.6 B/s: 8192 queued after the first interval (20 s), 4096, then 12288 twice (30 s).
    expect(p.bandwidth!.curve.map((c) => [Number((c.t - T0) / S), c.queuedBytes, c.lagSeconds])).toEqual([[10, 8192, 20], [20, 4096, 10], [30, 12288, 30], [40, 12288, 30]]);
    expect(p.bandwidth).toMatchObject({ achievedRpoSeconds: 30, keepsUp: false, finalQueuedBytes: 12288 });
  });

  it('the worst resync after a 20 s outage on a 1024 B/s link', () => {
    const p = planWindows([windowOf(a, undefined, undefined)], { outageSeconds: 20, bandwidthBytesPerSecond: 1024 });
    // Outage over the last two intervals: 12288 distinct bytes (16384 written), drained past the
    // series at 1024 − 716.8 B/s: 40 s. The other placements take 20 s and 30 s.
    expect(p.resync).toEqual({ outageSeconds: 20, intervals: 2, resyncBytes: 12288, backlogBytes: 16384, bandwidth: 1024, seconds: expect.closeTo(40, 9), worstStart: T0 + 20n * S });
    expect(p.bandwidth).toMatchObject({ achievedRpoSeconds: 2, keepsUp: true });
    // A link slower than the mean write rate never catches up.
    expect(planWindows([windowOf(a, undefined, undefined)], { outageSeconds: 20, bandwidthBytesPerSecond: 500 }).resync!.seconds).toBeNull();
  });

  it('a group: bytes add per interval, distinct bytes are OR per volume and summed across volumes', () => {
    const p = planWindows([windowOf(a, T0, T0 + 39n * S), windowOf(b, T0, T0 + 39n * S)], { rpoSeconds: 10 });
    expect(p.bytes).toMatchObject({ written: 45056, unique: 12288 + 8192, uniqueByInterval: 20480 + 8192 });
    // Group slots 12288, 16384, 12288, 4096: the first three against 30 s + 10 s need 1024 B/s.
    expect(p.rpo!.recommendedBandwidth).toBeCloseTo(1024, 6);
  });

  it('the unique basis plans for coalescing within each interval, and warns when the RPO is below the interval', () => {
    const p = planWindows([windowOf(a, undefined, undefined)], { rpoSeconds: 5, basis: 'unique' });
    // Unique slots 4096, 0, 12288, 4096: 12288 against 10 s + 5 s.
    expect(p.rpo!.recommendedBandwidth).toBeCloseTo(819.2, 6);
    expect(p.warnings.join(' ')).toMatch(/below the interval/);
  });
});
