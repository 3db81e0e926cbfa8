import { describe, expect, it } from 'vitest';
import { ByteQueue } from './byte-queue.js';
import { PayloadPool } from './payload-pool.js';

describe('PayloadPool', () => {
  it('hands out power-of-two buffers and hands a released one out again for its class', () => {
    const pool = new PayloadPool();
    const a = pool.acquire(300_000);
    expect(a.length).toBe(300_000);
    expect(a.buffer.byteLength).toBe(512 * 1024);
    pool.release(a);
    expect(pool.heldBytes).toBe(512 * 1024);
    const b = pool.acquire(400_000);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.acquire(400_000).buffer).not.toBe(a.buffer); // the free list is empty again
    expect(pool.acquire(1).buffer.byteLength).toBe(4096);
  });

  it('refuses memory it did not hand out, so a stray release cannot be reused under a write', () => {
    const pool = new PayloadPool();
    expect(() => pool.release(Buffer.alloc(5000))).toThrow(RangeError);
    expect(() => pool.release(Buffer.allocUnsafeSlow(8192).subarray(16))).toThrow(RangeError);
    expect(pool.heldBytes).toBe(0);
  });

  it('keeps a bounded free list per class', () => {
    const pool = new PayloadPool();
    const bufs = Array.from({ length: 100 }, () => pool.acquire(1 << 20));
    for (const b of bufs) pool.release(b);
    expect(pool.heldBytes).toBe(64 << 20);
  });

  it('keeps at most 128 MiB free over all classes, whatever sizes a peer writes', () => {
    const pool = new PayloadPool();
    for (let size = 4096; size <= 32 << 20; size *= 2) {
      const bufs = Array.from({ length: Math.min(256, Math.ceil((64 << 20) / size)) }, () => pool.acquire(size));
      for (const b of bufs) pool.release(b);
    }
    expect(pool.heldBytes).toBeLessThanOrEqual(128 << 20);
    expect(pool.heldBytes).toBeGreaterThan(64 << 20);
    // What is handed out again leaves the count.
    const before = pool.heldBytes;
    pool.acquire(4096);
    expect(pool.heldBytes).toBe(before - 4096);
  });

  it('cuts kept small buffers from a shared slab without overlap', () => {
    const pool = new PayloadPool();
    const a = pool.keep(4096).fill(1);
    const b = pool.keep(100).fill(2);
    expect(a.buffer).toBe(b.buffer);
    expect(a.every((x) => x === 1)).toBe(true);
    expect(pool.keep(1 << 20).buffer).not.toBe(a.buffer);
    expect(pool.isKept(b)).toBe(true);
    expect(pool.isKept(Buffer.alloc(100))).toBe(false);
    expect(pool.isKept(pool.acquire(100))).toBe(false);
  });
});

describe('ByteQueue.ownNewest', () => {
  it('copies what is left of a borrowed chunk, so reusing the chunk does not change the queue', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('abc'));
    const borrowed = Buffer.from('defghij');
    q.push(borrowed);
    q.skip(5); // "abc" and "de"
    q.ownNewest();
    borrowed.fill(0x7a);
    expect(q.take(5).toString()).toBe('fghij');
    const only = Buffer.from('klmnop');
    q.push(only);
    q.skip(2);
    q.ownNewest();
    only.fill(0x7a);
    const out = Buffer.alloc(4);
    q.copyOut(out, 0, 4);
    expect(out.toString()).toBe('mnop');
    expect(q.length).toBe(0);
  });
});
