import { describe, expect, it } from 'vitest';
import { MemoryBudget, MIN_MEMORY_BUDGET } from './memory-budget.js';

describe('MemoryBudget', () => {
  it('grants what fits at once, queues the rest first come first served, and never lets a newcomer overtake', () => {
    const b = new MemoryBudget(MIN_MEMORY_BUDGET);
    const big = MIN_MEMORY_BUDGET - 1000;
    expect(b.tryTake(big)).toBe(true);
    const order: string[] = [];
    expect(b.tryTake(5000)).toBe(false);
    b.wait(5000, () => order.push('a'));
    b.wait(100, () => order.push('b'));
    // 100 bytes would fit now, but 'a' and 'b' wait ahead of it.
    expect(b.tryTake(100)).toBe(false);
    expect(b.waiting).toBe(2);
    b.release(big);
    expect(order).toEqual(['a', 'b']);
    expect(b.held).toBe(5100);
    expect(b.peak).toBe(big);
  });

  it('drops a cancelled wait and grants the next one', () => {
    const b = new MemoryBudget(MIN_MEMORY_BUDGET);
    expect(b.tryTake(MIN_MEMORY_BUDGET)).toBe(true);
    let granted = 0;
    const w = b.wait(10, () => granted++);
    b.wait(20, () => granted++);
    w.cancel();
    b.release(MIN_MEMORY_BUDGET);
    expect(granted).toBe(1);
    expect(b.held).toBe(20);
    expect(b.waiting).toBe(0);
  });

  it('refuses a bound below one maximum request with a message naming the flag', () => {
    expect(() => new MemoryBudget(1 << 20)).toThrow(/--nbd-memory/);
    expect(() => new MemoryBudget(MIN_MEMORY_BUDGET).setLimit(0)).toThrow(/at least/);
  });

  it('catches a release of more than was reserved', () => {
    const b = new MemoryBudget();
    expect(() => b.release(1)).toThrow(RangeError);
  });
});
