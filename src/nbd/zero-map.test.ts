import { describe, expect, it } from 'vitest';
import { ByteQueue } from './byte-queue.js';
import { HOLE_ZERO, ZERO_ONLY, ZeroMap } from './zero-map.js';

describe('zero map', () => {
  it('tracks holes, writes and zeroed ranges, and reports gaps as data', () => {
    const m = new ZeroMap();
    m.set(0, 1000, HOLE_ZERO);
    m.set(100, 200, 0);
    m.set(150, 160, ZERO_ONLY);
    expect(m.query(0, 1000).map((r) => [r.start, r.end, r.flags])).toEqual([
      [0, 100, HOLE_ZERO], [100, 150, 0], [150, 160, ZERO_ONLY], [160, 200, 0], [200, 1000, HOLE_ZERO],
    ]);
    m.set(100, 200, HOLE_ZERO);
    expect(m.size).toBe(1);
    expect(m.query(50, 60)).toEqual([{ start: 50, end: 60, flags: HOLE_ZERO }]);
  });

  it('forgets everything (all data) rather than growing past its bound', () => {
    const m = new ZeroMap(10);
    for (let i = 0; i < 11; i++) m.set(i * 10, i * 10 + 5, ZERO_ONLY);
    expect(m.query(0, 200).every((r) => r.flags === 0)).toBe(true);
  });
});

describe('byte queue', () => {
  it('slices within a chunk, copies across chunks, skips without allocating', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('abcdef'));
    q.push(Buffer.from('ghij'));
    expect(q.peekUInt32(4)).toBe(Buffer.from('efgh').readUInt32BE(0));
    expect(q.take(2).toString()).toBe('ab');
    expect(q.contiguous(4)).toBe(true);
    expect(q.takeList(6).map((b) => b.toString())).toEqual(['cdef', 'gh']);
    expect(q.skip(100)).toBe(2);
    expect(q.length).toBe(0);
  });
});
