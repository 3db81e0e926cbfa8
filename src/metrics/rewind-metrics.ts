import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Every Rewind metric of the data path, defined once (docs/metrics.md lists them, with the
 * side that exports each, and a test keeps that list and a live /metrics in step). Each
 * call creates a fresh prom-client Registry (never the global default) so tests and
 * several in-process services get independent sets.
 *
 * Most values are derived from state the components already keep (VolumeStore.status(),
 * the Spool counters, Shipper.status(), plain counters in the write filter): `onScrape`
 * hooks copy them into gauges right before a scrape, so nothing on the write path pays for
 * a label lookup. Events (appends, restores, diffs, scrubs, fsyncs) are recorded as they
 * happen; none of them is per NBD request.
 */
export interface RewindMetrics {
  readonly registry: Registry;
  // --- node side (rewind serve --http, rewind up) ---
  /** NBD mutations the volume received, by op (write, trim, zero). */
  readonly writeOps: Counter<'volume' | 'op'>;
  readonly writeBytes: Counter<'volume' | 'op'>;
  readonly spoolBytes: Gauge<'volume'>;
  readonly spoolCapacity: Gauge<'volume'>;
  readonly spoolRecords: Gauge<'volume'>;
  /** 1 for the spool's current state, 0 for the others. */
  readonly spoolState: Gauge<'volume' | 'state'>;
  /** side="node": now − time of the oldest unacked entry; side="collector": now − latest durable time. */
  readonly lagSeconds: Gauge<'volume' | 'side'>;
  /** The node's lag sampled once a second (time-weighted distribution). */
  readonly shippingLag: Histogram<'volume'>;
  readonly shipperConnected: Gauge<'volume'>;
  readonly reconnects: Counter<'volume'>;
  readonly shipperBytesSent: Counter<'volume'>;
  /** 1 while a flush-sync/sync wait passed --flush-wait-timeout and the collector has not caught up (flush-wait.ts). */
  readonly durabilityDegraded: Gauge<'volume'>;
  readonly flushWaitTimeouts: Counter<'volume'>;
  // --- both: the node's view is the collector's ack, the collector's its own journal ---
  readonly durableSeq: Gauge<'volume'>;
  // --- collector side ---
  readonly entriesAppended: Counter<'volume'>;
  readonly bytesAppended: Counter<'volume'>;
  readonly latestDurableTime: Gauge<'volume'>;
  readonly journalBytes: Gauge<'volume'>;
  readonly checkpointBytes: Gauge<'volume'>;
  readonly restorableWindow: Gauge<'volume'>;
  readonly restores: Counter<'volume' | 'kind' | 'result'>;
  readonly restoreDuration: Histogram<'volume' | 'kind'>;
  readonly restoreBytes: Counter<'volume'>;
  readonly diffDuration: Histogram<'volume'>;
  readonly scrubs: Counter<'volume'>;
  readonly scrubErrors: Counter<'volume'>;
  readonly scrubProblems: Gauge<'volume'>;
  readonly ingestBytes: Counter;
  readonly fsyncDuration: Histogram;
  readonly diskFree: Gauge;
  readonly diskSize: Gauge;
  readonly volumes: Gauge;
  /** Register a function run before every render (cheap: copies in-memory status). */
  onScrape(hook: () => void | Promise<void>): () => void;
  /** Run the scrape hooks, then the Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
}

export const SPOOL_STATES = ['ok', 'blocked', 'dirty-tracking'] as const;
export const WRITE_OPS = ['write', 'trim', 'zero'] as const;

/** Seconds buckets from 1 ms to ~30 min: diffs are milliseconds, full restores minutes. */
const DURATION_BUCKETS = [0.001, 0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
/**
 * Lag buckets from 100 ms (flush-sync on a LAN keeps it there) to an hour (a long outage),
 * dense around the RPO targets people set (5 s – 5 min).
 */
const LAG_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
/** fdatasync on SSDs is 50 µs – 5 ms; on network disks and under load tens to hundreds of ms. */
const FSYNC_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Which process exports a metric: the node side, the collector, or both (docs/metrics.md "side"). */
export type MetricSide = 'node' | 'collector';

/**
 * `sides`: the parts this process runs (default both, as `rewind up` does). Metrics of
 * the other part are still created, so callers need no checks, but are not registered:
 * a node's /metrics shows no collector disk gauge stuck at 0, and the other way round.
 */
export function createRewindMetrics(opts: { prefix?: string; sides?: readonly MetricSide[] } = {}): RewindMetrics {
  const p = opts.prefix ?? 'rewind_';
  const sides = opts.sides ?? ['node', 'collector'];
  const registry = new Registry();
  const on = (side: MetricSide | 'both'): Registry[] => (side === 'both' || sides.includes(side) ? [registry] : []);
  const hooks = new Set<() => void | Promise<void>>();
  const m: RewindMetrics = {
    registry,
    writeOps: new Counter({ name: `${p}write_ops_total`, help: 'NBD mutations the volume received, by op (write, trim, zero)', labelNames: ['volume', 'op'], registers: on('node') }),
    writeBytes: new Counter({ name: `${p}write_bytes_total`, help: 'Bytes the NBD mutations covered, by op (write, trim, zero)', labelNames: ['volume', 'op'], registers: on('node') }),
    spoolBytes: new Gauge({ name: `${p}spool_depth_bytes`, help: 'Bytes of spool segments on the node', labelNames: ['volume'], registers: on('node') }),
    spoolCapacity: new Gauge({ name: `${p}spool_capacity_bytes`, help: 'Bytes the spool may hold before its full policy applies (--spool-max)', labelNames: ['volume'], registers: on('node') }),
    spoolRecords: new Gauge({ name: `${p}spool_depth_records`, help: 'Spool entries not yet acknowledged by the collector', labelNames: ['volume'], registers: on('node') }),
    spoolState: new Gauge({ name: `${p}spool_state`, help: 'Spool state (1 = current)', labelNames: ['volume', 'state'], registers: on('node') }),
    lagSeconds: new Gauge({ name: `${p}lag_seconds`, help: 'Replication lag: node = now − oldest unacked entry; collector = now − latest durable entry', labelNames: ['volume', 'side'], registers: on('both') }),
    shippingLag: new Histogram({ name: `${p}shipping_lag_seconds`, help: 'Node shipping lag sampled once a second (each observation is one second spent at that lag)', labelNames: ['volume'], buckets: LAG_BUCKETS, registers: on('node') }),
    shipperConnected: new Gauge({ name: `${p}shipper_connected`, help: 'Whether the shipper has an open append stream to the collector (1) or not (0)', labelNames: ['volume'], registers: on('node') }),
    reconnects: new Counter({ name: `${p}shipper_reconnects_total`, help: 'Append stream reconnects by the shipper', labelNames: ['volume'], registers: on('node') }),
    shipperBytesSent: new Counter({ name: `${p}shipper_bytes_sent_total`, help: 'Bytes of entries sent by the shipper', labelNames: ['volume'], registers: on('node') }),
    durabilityDegraded: new Gauge({ name: `${p}durability_degraded`, help: 'Whether a flush-sync or sync wait for the collector passed --flush-wait-timeout and the collector has not caught up yet (1: Degraded) or not (0)', labelNames: ['volume'], registers: on('node') }),
    flushWaitTimeouts: new Counter({ name: `${p}flush_wait_timeouts_total`, help: 'Waits for the collector (flush-sync FLUSH/FUA, sync writes) that passed --flush-wait-timeout', labelNames: ['volume'], registers: on('node') }),
    durableSeq: new Gauge({ name: `${p}durable_seq`, help: 'Highest contiguous durable seq', labelNames: ['volume'], registers: on('both') }),
    entriesAppended: new Counter({ name: `${p}entries_appended_total`, help: 'Journal entries appended durably by the collector', labelNames: ['volume'], registers: on('collector') }),
    bytesAppended: new Counter({ name: `${p}bytes_appended_total`, help: 'Payload bytes of entries appended durably by the collector', labelNames: ['volume'], registers: on('collector') }),
    latestDurableTime: new Gauge({ name: `${p}latest_durable_time_seconds`, help: 'Time of the latest durable entry (seconds since the epoch)', labelNames: ['volume'], registers: on('collector') }),
    journalBytes: new Gauge({ name: `${p}journal_bytes`, help: 'Bytes of collector journal segments', labelNames: ['volume'], registers: on('collector') }),
    checkpointBytes: new Gauge({ name: `${p}checkpoint_bytes`, help: 'Allocated bytes of the collector checkpoint image', labelNames: ['volume'], registers: on('collector') }),
    restorableWindow: new Gauge({ name: `${p}restorable_window_seconds`, help: 'Length of the window any instant of which can be restored (newest − oldest restorable time)', labelNames: ['volume'], registers: on('collector') }),
    restores: new Counter({ name: `${p}restores_total`, help: 'Restores read from the history, by kind (image, changed-blocks) and result (ok, error)', labelNames: ['volume', 'kind', 'result'], registers: on('collector') }),
    restoreDuration: new Histogram({ name: `${p}restore_duration_seconds`, help: 'Restore (image or changed-blocks) duration', labelNames: ['volume', 'kind'], buckets: DURATION_BUCKETS, registers: on('collector') }),
    restoreBytes: new Counter({ name: `${p}restore_bytes_total`, help: 'Bytes emitted by restores', labelNames: ['volume'], registers: on('collector') }),
    diffDuration: new Histogram({ name: `${p}diff_duration_seconds`, help: 'Diff computation duration', labelNames: ['volume'], buckets: DURATION_BUCKETS, registers: on('collector') }),
    scrubs: new Counter({ name: `${p}scrubs_total`, help: 'Scrubs (a CRC audit of every journal record and checkpoint extent) run on the volume', labelNames: ['volume'], registers: on('collector') }),
    scrubErrors: new Counter({ name: `${p}scrub_errors_total`, help: 'Damaged records or extents found by scrubs (each scrub counts what it finds)', labelNames: ['volume'], registers: on('collector') }),
    scrubProblems: new Gauge({ name: `${p}scrub_problems`, help: 'Damaged records or extents the latest scrub found (0 after a clean one)', labelNames: ['volume'], registers: on('collector') }),
    ingestBytes: new Counter({ name: `${p}collector_ingest_bytes_total`, help: 'Bytes of journal entries (header + payload) the collector received to append, resends included', registers: on('collector') }),
    fsyncDuration: new Histogram({ name: `${p}collector_fsync_duration_seconds`, help: 'Duration of the collector journal fdatasync calls that make appends durable', buckets: FSYNC_BUCKETS, registers: on('collector') }),
    diskFree: new Gauge({ name: `${p}collector_disk_free_bytes`, help: 'Bytes available to the collector on the filesystem of its data directory', registers: on('collector') }),
    diskSize: new Gauge({ name: `${p}collector_disk_size_bytes`, help: 'Size in bytes of the filesystem of the collector data directory', registers: on('collector') }),
    volumes: new Gauge({ name: `${p}collector_volumes`, help: 'Volumes the collector holds history for', registers: on('collector') }),
    onScrape(hook) {
      hooks.add(hook);
      return () => hooks.delete(hook);
    },
    async render() {
      for (const h of hooks) await h();
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
  return m;
}

/** Seconds between ns since the epoch and now (never negative). */
export function secondsSince(ns: bigint, nowMs = Date.now()): number {
  return Math.max(0, (nowMs - Number(ns / 1_000_000n)) / 1000);
}
