import { describe, expect, it } from 'vitest';
import { WorkQueue } from './work-queue.js';

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key being processed to a second worker; an add meanwhile runs it again after', async () => {
    const q = new WorkQueue();
    q.add('a');
    const k = await q.get();
    q.add('a');
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((x) => (second = x));
    await new Promise((r) => setTimeout(r, 10));
    expect(second).toBeUndefined();
    q.done(k!);
    await new Promise((r) => setTimeout(r, 0));
    expect(second).toBe('a');
  });

  it('backs off per key, doubling, until forget', async () => {
    const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 40 });
    expect(q.addRateLimited('a')).toBe(5);
    expect(q.addRateLimited('a')).toBe(10);
    expect(q.addRateLimited('a')).toBe(20);
    expect(q.addRateLimited('a')).toBe(40);
    expect(q.addRateLimited('a')).toBe(40);
    expect(q.failureCount('a')).toBe(5);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(5);
    const t0 = Date.now();
    expect(await q.get()).toBe('a');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4);
  });

  it('a fresh add is not held back by a pending delay', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 60_000);
    q.add('a');
    expect(await q.get()).toBe('a');
    q.shutDown();
  });

  it('on shutdown, waiting workers get undefined and nothing more is handed out', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.add('x');
    q.done((await waiting)!);
    const next = q.get();
    q.shutDown();
    expect(await next).toBeUndefined();
    q.add('y');
    expect(await q.get()).toBeUndefined();
  });
});
