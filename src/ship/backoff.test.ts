import { describe, expect, it } from 'vitest';
import { Backoff, sleep } from './backoff.js';

describe('Backoff', () => {
  it('doubles its ceiling up to the cap and jitters below it', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999 });
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays.slice(0, 5)).toEqual([99, 199, 399, 799, 999]);
    expect(Math.max(...delays)).toBeLessThan(1000);
  });

  it('uses the full range below the ceiling (full jitter)', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    expect(b.next()).toBe(0);
  });

  it('starts again from the initial delay after reset', () => {
    const b = new Backoff({ initialMs: 50, maxMs: 10_000, random: () => 0.5 });
    for (let i = 0; i < 6; i++) b.next();
    expect(b.ceiling()).toBeGreaterThan(1000);
    b.reset();
    expect(b.ceiling()).toBe(50);
    expect(b.next()).toBe(25);
  });

  it('sleep ends early when its signal aborts', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 20);
    await sleep(5_000, ac.signal);
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
