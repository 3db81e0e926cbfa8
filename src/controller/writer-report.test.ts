import { describe, expect, it } from 'vitest';
import type { VolumeStatusView } from '../rpc/collector-api.js';
import { lagSecondsOf, writerOf } from './protected-volume-reconciler.js';

const view = (writer: Record<string, unknown> | undefined, durableSeq = 10n, durableTime = 1_000_000_000n): VolumeStatusView => ({
  volume: 'v', size: 1n << 20n, generation: 1n, durableSeq, durableTime, windowOldest: 0n, windowNewest: durableTime, journalBytes: 0n,
  writerConnected: writer !== undefined, detail: writer ? { writer } : {},
});

describe("the node's report as the controller reads it", () => {
  it('takes the mode in force and the node problem that becomes the Degraded reason', () => {
    const w = writerOf(view({ role: 'node', durability: 'flush-sync', latestSeq: '12', latestTimeNs: '3000000000', problem: 'CollectorLostAcknowledged', problemMessage: 'lost seqs 5-9' }));
    expect(w.durability).toBe('flush-sync');
    expect(w.problem).toEqual({ reason: 'CollectorLostAcknowledged', message: 'lost seqs 5-9' });
    // The node is 2 s ahead of what the collector holds.
    expect(lagSecondsOf(view({}), w)).toBe(2);
  });

  it('ignores a reason the API server would refuse, an unknown mode, and no report at all', () => {
    expect(writerOf(view({ problem: 'not a reason!', durability: 'fast' }))).toEqual({});
    expect(writerOf(view(undefined))).toEqual({});
    expect(lagSecondsOf(view({}), { latestSeq: 10n, latestTimeNs: 9_000_000_000n })).toBe(0);
  });
});
