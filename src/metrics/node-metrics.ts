import type { Backend } from '../nbd/backend.js';
import type { NodeVolume } from '../ship/node-volume.js';
import { trackNode } from './observe.js';
import type { RewindMetrics } from './rewind-metrics.js';
import { countWrites, trackWrites } from './write-counter.js';

/**
 * Everything the node side exports for one volume, as `rewind serve` and `rewind up` run
 * it: serve the returned backend (it counts the NBD mutations on their way to the journal
 * filter) and call stop() after the NBD server closed.
 */
export function instrumentNodeVolume(m: RewindMetrics, volume: string, vol: Pick<NodeVolume, 'backend' | 'spool' | 'shipper'> & Partial<Pick<NodeVolume, 'durability'>>, opts: { spoolMaxBytes: number }): { backend: Backend; stop(): void } {
  const { backend, counts } = countWrites(vol.backend);
  const offWrites = trackWrites(m, volume, counts);
  const offNode = trackNode(m, volume, vol.spool, vol.shipper, { spoolMaxBytes: opts.spoolMaxBytes, ...(vol.durability ? { durability: vol.durability } : {}) });
  return {
    backend,
    stop() {
      offWrites();
      offNode();
    },
  };
}
