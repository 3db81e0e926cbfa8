import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Counter } from 'prom-client';
import type { CollectorStore } from '../collector/store/collector-store.js';
import type { VolumeStore } from '../collector/store/volume-store.js';
import { observeJournalSyncs } from '../journal/sync-timing.js';
import { RECORD_HEADER_SIZE } from '../journal/record.js';
import type { ShipperStatus } from '../ship/shipper.js';
import { SPOOL_STATES, secondsSince, type RewindMetrics } from './rewind-metrics.js';

/** What the collector side reads from VolumeStore.status() (a subset, so fakes are easy). */
export interface VolumeStatusLike {
  name: string;
  durableSeq: bigint;
  latestTime: bigint;
  journalBytes: number;
  checkpointBytes: number;
  /** The restorable window (absent in fakes that do not care). */
  window?: { earliest: bigint; latest: bigint };
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
  if (s.window) {
    const w = s.window.latest > s.window.earliest ? s.window.latest - s.window.earliest : 0n;
    m.restorableWindow.set(l, Number(w / 1_000_000n) / 1000);
  }
}

export function observeSpool(m: RewindMetrics, volume: string, spool: SpoolLike, capacityBytes?: number): void {
  m.spoolBytes.set({ volume }, spool.bytes);
  if (capacityBytes !== undefined) m.spoolCapacity.set({ volume }, capacityBytes);
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
  else if (!per.has(volume)) c.inc({ volume }, 0); // a series from the first scrape on
  per.set(volume, Math.max(prev, value));
}

export function observeShipper(m: RewindMetrics, volume: string, s: ShipperStatus): void {
  m.lagSeconds.set({ volume, side: 'node' }, s.lagSeconds);
  m.shipperConnected.set({ volume }, s.connected ? 1 : 0);
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

/** Per registry, so two registries over one store (tests) each count. */
const instrumented = new WeakMap<RewindMetrics, WeakSet<VolumeStore>>();
function firstTime(m: RewindMetrics, vol: VolumeStore): boolean {
  let set = instrumented.get(m);
  if (!set) instrumented.set(m, (set = new WeakSet()));
  if (set.has(vol)) return false;
  set.add(vol);
  return true;
}

/**
 * Count appends of a VolumeStore by decorating its `append` on this instance: the store
 * and the gRPC append handler are owned elsewhere, and wrapping here keeps every caller
 * (stream, restore writers, tests, one-machine mode) counted in one place. Each seq is
 * counted once, when the first call carrying it resolves, so resends are not: calls
 * resolve in call order, also while two are in flight. Ingest bytes count every record
 * handed in, resends included: that is what the collector's disk and network took.
 */
export function countVolumeAppends(m: RewindMetrics, vol: VolumeStore): void {
  if (!firstTime(m, vol)) return;
  instrumentVolume(m, vol);
}

function instrumentVolume(m: RewindMetrics, vol: VolumeStore): void {
  const append = vol.append.bind(vol);
  let through = vol.durableSeq;
  vol.append = async (records) => {
    let ingest = 0;
    for (const r of records) ingest += RECORD_HEADER_SIZE + r.payload.length;
    m.ingestBytes.inc(ingest);
    const after = await append(records);
    const from = through;
    if (after > through) through = after;
    countAppend(m, vol.name, records.filter((r) => r.seq > from && r.seq <= after));
    return after;
  };

  // Every restore reader (HTTP image download, gRPC Restore, restore jobs, the instant
  // export) goes through VolumeStore.restore, so it is timed here once.
  const restore = vol.restore.bind(vol);
  vol.restore = async (p, sink, opts = {}) => {
    const kind = opts.changedSince ? 'changed-blocks' : 'image';
    const t0 = process.hrtime.bigint();
    try {
      const r = await restore(p, sink, opts);
      m.restores.inc({ volume: vol.name, kind, result: 'ok' });
      m.restoreDuration.observe({ volume: vol.name, kind }, Number(process.hrtime.bigint() - t0) / 1e9);
      m.restoreBytes.inc({ volume: vol.name }, Number(r.bytes));
      return r;
    } catch (err) {
      m.restores.inc({ volume: vol.name, kind, result: 'error' });
      throw err;
    }
  };

  const scrub = vol.scrub.bind(vol);
  vol.scrub = async () => {
    const r = await scrub();
    m.scrubs.inc({ volume: vol.name });
    m.scrubErrors.inc({ volume: vol.name }, r.problems.length);
    m.scrubProblems.set({ volume: vol.name }, r.problems.length);
    return r;
  };

  // Series that exist before the first event, so rate() and alerts see them from the start.
  for (const kind of ['image', 'changed-blocks']) {
    m.restores.inc({ volume: vol.name, kind, result: 'ok' }, 0);
    m.restoreDuration.zero({ volume: vol.name, kind });
  }
  m.diffDuration.zero({ volume: vol.name });
  m.restoreBytes.inc({ volume: vol.name }, 0);
  m.scrubs.inc({ volume: vol.name }, 0);
  m.scrubErrors.inc({ volume: vol.name }, 0);
  m.entriesAppended.inc({ volume: vol.name }, 0);
  m.bytesAppended.inc({ volume: vol.name }, 0);
}

/** Per-volume series to drop when a volume leaves the store. */
function forgetVolume(m: RewindMetrics, volume: string): void {
  for (const g of [m.durableSeq, m.latestDurableTime, m.journalBytes, m.checkpointBytes, m.restorableWindow, m.scrubProblems]) g.remove({ volume });
  m.lagSeconds.remove({ volume, side: 'collector' });
}

/**
 * Collector side: per-volume gauges from the store at every scrape; appends, restores and
 * scrubs counted as they happen (each volume instrumented the moment the store opens or
 * creates it); fdatasync durations of the store's journals; the data directory's free space.
 */
export function trackCollectorStore(m: RewindMetrics, store: CollectorStore): () => void {
  // The collector service and its HTTP server may both ask; one tracking per registry and
  // store (else each fdatasync would be observed twice), ended by the last untrack.
  let per = tracking.get(m);
  if (!per) tracking.set(m, (per = new WeakMap()));
  let t = per.get(store);
  if (!t) per.set(store, (t = { refs: 0, stop: startTracking(m, store) }));
  t.refs++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--t.refs === 0) {
      per.delete(store);
      t.stop();
    }
  };
}

const tracking = new WeakMap<RewindMetrics, WeakMap<CollectorStore, { refs: number; stop: () => void }>>();

function startTracking(m: RewindMetrics, store: CollectorStore): () => void {
  const offVolume = store.onVolume((v) => countVolumeAppends(m, v));
  const root = path.resolve(store.dataDir) + path.sep;
  const offSyncs = observeJournalSyncs((dir, seconds) => {
    if (path.resolve(dir).startsWith(root)) m.fsyncDuration.observe(seconds);
  });
  let known = new Set<string>();
  const sync = async (): Promise<void> => {
    const now = new Set<string>();
    for (const v of store.listVolumes()) {
      now.add(v.name);
      observeVolumeStatus(m, v.status());
    }
    for (const name of known) if (!now.has(name)) forgetVolume(m, name);
    known = now;
    m.volumes.set(now.size);
    try {
      const s = await fsp.statfs(store.dataDir);
      m.diskFree.set(s.bavail * s.bsize);
      m.diskSize.set(s.blocks * s.bsize);
    } catch {
      // The directory went away (store closing): keep the last values rather than fail the scrape.
    }
  };
  const offScrape = m.onScrape(sync);
  return () => {
    offScrape();
    offSyncs();
    offVolume();
  };
}

/** How often the node's lag is sampled into rewind_shipping_lag_seconds. */
export const LAG_SAMPLE_MS = 1000;

/**
 * Node side: spool and shipper of one volume at every scrape, and the shipper's lag
 * sampled once a second into a histogram. Sampling on a clock (not per scrape, not per
 * ack) makes the distribution time-weighted whatever the write rate or the number of
 * scrapers: histogram_quantile(0.99, …) is the lag the volume stayed under 99 % of the time.
 */
export function trackNode(
  m: RewindMetrics,
  volume: string,
  spool: SpoolLike,
  shipper?: { status(): ShipperStatus },
  opts: { spoolMaxBytes?: number; durability?: () => { degraded: boolean; timeouts: number } } = {},
): () => void {
  const off = m.onScrape(() => {
    observeSpool(m, volume, spool, opts.spoolMaxBytes);
    if (shipper) observeShipper(m, volume, shipper.status());
    const d = opts.durability?.() ?? { degraded: false, timeouts: 0 };
    m.durabilityDegraded.set({ volume }, d.degraded ? 1 : 0);
    advance(m.flushWaitTimeouts, volume, d.timeouts);
  });
  if (!shipper) return off;
  m.shippingLag.zero({ volume });
  const timer = setInterval(() => m.shippingLag.observe({ volume }, shipper.status().lagSeconds), LAG_SAMPLE_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    off();
  };
}
