import { describe, expect, it } from 'vitest';
import { RangeLock } from './range-lock.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('RangeLock', () => {
  it('lets non-overlapping ranges proceed at once', async () => {
    const lock = new RangeLock();
    const a = await lock.acquire(0n, 4096);
    const b = await lock.acquire(4096n, 4096);
    expect(lock.size).toBe(2);
    a();
    b();
    expect(lock.size).toBe(0);
  });

  it('makes an overlapping range wait for the earlier holder', async () => {
    const lock = new RangeLock();
    const order: string[] = [];
    const first = await lock.acquire(0n, 8192);
    const second = lock.acquire(4096n, 100).then((rel) => {
      order.push('second');
      rel();
    });
    await tick();
    expect(order).toEqual([]);
    order.push('first-released');
    first();
    await second;
    expect(order).toEqual(['first-released', 'second']);
  });

  it('grants overlapping waiters in arrival order', async () => {
    const lock = new RangeLock();
    const order: number[] = [];
    const first = await lock.acquire(0n, 10);
    const waits = [1, 2, 3].map((n) =>
      lock.acquire(BigInt(n), 5).then(async (rel) => {
        order.push(n);
        await tick();
        rel();
      }),
    );
    first();
    await Promise.all(waits);
    expect(order).toEqual([1, 2, 3]);
  });

  it('treats adjacent ranges as disjoint and releases idempotently', async () => {
    const lock = new RangeLock();
    const a = await lock.acquire(0n, 512);
    const b = await Promise.race([lock.acquire(512n, 512), tick().then(() => null)]);
    expect(b).not.toBeNull();
    a();
    a();
    b!();
    expect(lock.size).toBe(0);
  });
});

describe('RangeLock.tryAcquire', () => {
  it('takes a free range at once and refuses one that overlaps a holder or a waiter', async () => {
    const lock = new RangeLock();
    const a = lock.tryAcquire(0n, 4096)!;
    expect(a).toBeTypeOf('function');
    expect(lock.tryAcquire(4095n, 2)).toBeNull();
    const b = lock.tryAcquire(4096n, 4096);
    expect(b).not.toBeNull();
    // A waiter queued behind `a` also blocks tryAcquire, so it cannot jump the queue.
    const waiting = lock.acquire(0n, 10);
    a();
    expect(lock.tryAcquire(5n, 1)).toBeNull();
    const w = await waiting;
    w();
    b!();
    expect(lock.tryAcquire(5n, 1)).not.toBeNull();
  });

  it('grants a waiter only when every earlier overlapping holder has released', async () => {
    const lock = new RangeLock();
    const left = lock.tryAcquire(0n, 100)!;
    const right = lock.tryAcquire(200n, 100)!;
    let granted = false;
    const spanning = lock.acquire(50n, 200).then((rel) => {
      granted = true;
      return rel;
    });
    left();
    await tick();
    expect(granted).toBe(false);
    right();
    (await spanning)();
    expect(granted).toBe(true);
    expect(lock.size).toBe(0);
  });
});
