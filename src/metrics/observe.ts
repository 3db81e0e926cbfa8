import type { Counter } from 'prom-client';
import type { CollectorStore } from '../collector/store/collector-store.js';
import type { VolumeStore } from '../collector/store/volume-store.js';
import type { ShipperStatus } from '../ship/shipper.js';
import { SPOOL_STATES, secondsSince, type RewindMetrics } from './rewind-metrics.js';

/** What the collector side reads from VolumeStore.status() (a subset, so fakes are easy). */
export interface VolumeStatusLike {
  name: string;
  durableSeq: bigint;
  latestTime: bigint;
  journalBytes: number;
  checkpointBytes: number;
}

/** What the node side reads from a Spool. */
export interface SpoolLike {
  readonly lastSeq: bigint;
  readonly ackedSeq: bigint;
  readonly bytes: number;
  readonly state: string;
}

export function observeVolumeStatus(m: RewindMetrics, s: VolumeStatusLike, nowMs = Date.now()): void {
  const l = { volume: s.name };
  m.durableSeq.set(l, Number(s.durableSeq));
  m.latestDurableTime.set(l, Number(s.latestTime / 1_000_000n) / 1000);
  m.lagSeconds.set({ volume: s.name, side: 'collector' }, s.latestTime > 0n ? secondsSince(s.latestTime, nowMs) : 0);
  m.journalBytes.set(l, s.journalBytes);
  m.checkpointBytes.set(l, s.checkpointBytes);
}

export function observeSpool(m: RewindMetrics, volume: string, spool: SpoolLike): void {
  m.spoolBytes.set({ volume }, spool.bytes);
  m.spoolRecords.set({ volume }, Number(spool.lastSeq > spool.ackedSeq ? spool.lastSeq - spool.ackedSeq : 0n));
  for (const st of SPOOL_STATES) m.spoolState.set({ volume, state: st }, spool.state === st ? 1 : 0);
}

/**
 * Shipper counters are cumulative numbers inside the shipper; Prometheus counters only
 * go up by increments, so remember what was last exported and add the difference (a
 * restarted shipper starting again at 0 simply adds nothing until it passes the old value).
 */
const lastSeen = new WeakMap<Counter<'volume'>, Map<string, number>>();
function advance(c: Counter<'volume'>, volume: string, value: number): void {
  let per = lastSeen.get(c);
  if (!per) lastSeen.set(c, (per = new Map()));
  const prev = per.get(volume) ?? 0;
  if (value > prev) c.inc({ volume }, value - prev);
  per.set(volume, Math.max(prev, value));
}

export function observeShipper(m: RewindMetrics, volume: string, s: ShipperStatus): void {
  m.lagSeconds.set({ volume, side: 'node' }, s.lagSeconds);
  advance(m.reconnects, volume, s.reconnects);
  advance(m.shipperBytesSent, volume, Number(s.bytesSent));
  // The node's view of durability is the collector's ack.
  m.durableSeq.set({ volume }, Number(s.ackedSeq));
}

/** Count a durable append (records' payload bytes). */
export function countAppend(m: RewindMetrics, volume: string, records: ReadonlyArray<{ payload: Buffer }>): void {
  if (records.length === 0) return;
  m.entriesAppended.inc({ volume }, records.length);
  m.bytesAppended.inc({ volume }, records.reduce((a, r) => a + r.payload.length, 0));
}

const counted = new WeakSet<VolumeStore>();

/**
 * Count appends of a VolumeStore by decorating its `append` on this instance: the store
 * and the gRPC append handler are owned elsewhere, and wrapping here keeps every caller
 * (stream, tests, one-machine mode) counted in one place. Each seq is counted once, when
 * the first call carrying it resolves, so resends are not: calls resolve in call order,
 * also while two are in flight.
 */
export function countVolumeAppends(m: RewindMetrics, vol: VolumeStore): void {
  if (counted.has(vol)) return;
  counted.add(vol);
  const orig = vol.append.bind(vol);
  let through = vol.durableSeq;
  vol.append = async (records) => {
    const after = await orig(records);
    const from = through;
    if (after > through) through = after;
    countAppend(m, vol.name, records.filter((r) => r.seq > from && r.seq <= after));
    return after;
  };
}

/** Collector side: per-volume gauges from the store at every scrape; appends counted. */
export function trackCollectorStore(m: RewindMetrics, store: CollectorStore): () => void {
  const sync = (): void => {
    for (const v of store.listVolumes()) {
      countVolumeAppends(m, v);
      observeVolumeStatus(m, v.status());
    }
  };
  sync();
  return m.onScrape(sync);
}

/** Node side: spool and shipper of one volume at every scrape. */
export function trackNode(m: RewindMetrics, volume: string, spool: SpoolLike, shipper?: { status(): ShipperStatus }): () => void {
  return m.onScrape(() => {
    observeSpool(m, volume, spool);
    if (shipper) observeShipper(m, volume, shipper.status());
  });
}
