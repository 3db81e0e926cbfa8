import { describe, expect, it } from 'vitest';
import { isRewindError } from '../core/errors.js';
import { DurableWaiters } from './durability.js';

describe('DurableWaiters', () => {
  it('resolves exactly the waiters at or below the acked seq, in order', async () => {
    const w = new DurableWaiters();
    const done: number[] = [];
    const ps = [5n, 1n, 3n, 9n].map((s) => w.wait(s).then(() => done.push(Number(s))));
    w.advance(3n);
    await Promise.resolve();
    await Promise.resolve();
    expect(done.sort()).toEqual([1, 3]);
    expect(w.pending).toBe(2);
    w.advance(9n);
    await Promise.all(ps);
    expect(done).toEqual([1, 3, 5, 9]);
  });

  it('resolves at once for seqs already acked and never moves backwards', async () => {
    const w = new DurableWaiters();
    w.advance(10n);
    w.advance(4n);
    expect(w.ackedSeq).toBe(10n);
    await expect(w.wait(7n)).resolves.toBeUndefined();
  });

  it('rejects an aborted wait and forgets it', async () => {
    const w = new DurableWaiters();
    const ac = new AbortController();
    const p = w.wait(5n, ac.signal);
    ac.abort();
    await expect(p).rejects.toSatisfy((e) => isRewindError(e, 'REWIND_ERR_TIMEOUT'));
    expect(w.pending).toBe(0);
  });

  it('fails every pending and later waiter when stopped', async () => {
    const w = new DurableWaiters();
    const p = w.wait(2n);
    w.fail(new Error('stopped'));
    await expect(p).rejects.toThrow('stopped');
    await expect(w.wait(3n)).rejects.toThrow('stopped');
    await expect(w.wait(0n)).resolves.toBeUndefined();
  });
});
