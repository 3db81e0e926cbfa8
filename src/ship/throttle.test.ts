import { describe, expect, it } from 'vitest';
import { TokenBucket } from './throttle.js';

describe('TokenBucket', () => {
  it('lets a burst through at once and then paces to the rate', () => {
    let now = 0;
    const b = new TokenBucket(1000, 500, () => now);
    expect(b.delayFor(500)).toBe(0);
    void b.take(500);
    expect(b.delayFor(100)).toBe(100);
    now += 100;
    expect(b.delayFor(100)).toBe(0);
  });

  it('allows a send larger than the bucket by going into debt, repaid before the next', async () => {
    let now = 0;
    const b = new TokenBucket(1000, 100, () => now);
    await b.take(1000);
    expect(b.delayFor(1)).toBe(901);
    now += 901;
    expect(b.delayFor(1)).toBe(0);
  });

  it('holds the long-run rate in real time within tolerance', async () => {
    const b = new TokenBucket(200_000, 20_000);
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) await b.take(10_000);
    const secs = (performance.now() - t0) / 1000;
    // 200 kB at 200 kB/s minus the 20 kB burst: ~0.9 s.
    expect(secs).toBeGreaterThan(0.8);
    expect(secs).toBeLessThan(1.5);
  });

  it('refuses a non-positive rate', () => {
    expect(() => new TokenBucket(0)).toThrow(RangeError);
  });
});
