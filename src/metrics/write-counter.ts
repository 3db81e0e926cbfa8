import type { Backend } from '../nbd/backend.js';
import { WRITE_OPS, type RewindMetrics } from './rewind-metrics.js';

type Op = (typeof WRITE_OPS)[number];

/** Plain counters the filter bumps; copied into prom-client at scrape time. */
export interface WriteCounts {
  readonly ops: Record<Op, number>;
  readonly bytes: Record<Op, number>;
}

/**
 * A thin filter over the volume's backend that counts the mutations the NBD server hands
 * it, as they arrive (so a write that fails is counted too: it is what the workload asked
 * for). It adds no promise and no label lookup per request — two number increments, then
 * the call goes on to `next` unchanged — because this is the hot path every NBD WRITE
 * takes (journal-filter.ts has the measurements that made it allocation-free).
 */
export function countWrites(next: Backend): { backend: Backend; counts: WriteCounts } {
  const counts: WriteCounts = { ops: { write: 0, trim: 0, zero: 0 }, bytes: { write: 0, trim: 0, zero: 0 } };
  const backend: Backend = {
    get size() {
      return next.size;
    },
    capabilities: next.capabilities,
    blockSizes: next.blockSizes,
    get borrowsWriteBuffers() {
      return next.borrowsWriteBuffers;
    },
    pread: (buf, offset) => next.pread(buf, offset),
    pwrite: (buf, offset, o) => {
      counts.ops.write++;
      counts.bytes.write += buf.length;
      return next.pwrite(buf, offset, o);
    },
    // Only when `next` has it: without, the server joins the chunks and calls pwrite.
    ...(next.pwritev
      ? {
          pwritev: (bufs: readonly Buffer[], offset: bigint, o: { fua: boolean }) => {
            counts.ops.write++;
            for (const b of bufs) counts.bytes.write += b.length;
            return next.pwritev!(bufs, offset, o);
          },
        }
      : {}),
    flush: () => next.flush(),
    trim: (offset, length, o) => {
      counts.ops.trim++;
      counts.bytes.trim += length;
      return next.trim(offset, length, o);
    },
    zero: (offset, length, o) => {
      counts.ops.zero++;
      counts.bytes.zero += length;
      return next.zero(offset, length, o);
    },
    blockStatus: (offset, length) => next.blockStatus(offset, length),
    cache: (offset, length) => next.cache(offset, length),
    close: () => next.close(),
  };
  return { backend, counts };
}

/** Export `counts` as rewind_write_ops_total / rewind_write_bytes_total at every scrape. */
export function trackWrites(m: RewindMetrics, volume: string, counts: WriteCounts): () => void {
  const exported = { ops: { write: 0, trim: 0, zero: 0 }, bytes: { write: 0, trim: 0, zero: 0 } };
  const sync = (): void => {
    for (const op of WRITE_OPS) {
      // Zero increments too, so every op has a series from the first scrape on.
      m.writeOps.inc({ volume, op }, counts.ops[op] - exported.ops[op]);
      m.writeBytes.inc({ volume, op }, counts.bytes[op] - exported.bytes[op]);
      exported.ops[op] = counts.ops[op];
      exported.bytes[op] = counts.bytes[op];
    }
  };
  sync();
  return m.onScrape(sync);
}
