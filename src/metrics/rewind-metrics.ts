import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Every Rewind metric, defined once. Each call creates a fresh prom-client Registry (never
 * the global default) so tests and several in-process services get independent sets.
 *
 * Most values are derived from state the components already keep (VolumeStore.status(),
 * the Spool counters, Shipper.status()): `onScrape` hooks copy them into gauges right
 * before a scrape, so nothing on the write path pays for metrics. Only restore/diff
 * durations and appended entries/bytes are recorded as events.
 */
export interface RewindMetrics {
  readonly registry: Registry;
  readonly entriesAppended: Counter<'volume'>;
  readonly bytesAppended: Counter<'volume'>;
  readonly durableSeq: Gauge<'volume'>;
  readonly latestDurableTime: Gauge<'volume'>;
  /** side="node": now − time of the oldest unacked entry; side="collector": now − latest durable time. */
  readonly lagSeconds: Gauge<'volume' | 'side'>;
  readonly spoolBytes: Gauge<'volume'>;
  readonly spoolRecords: Gauge<'volume'>;
  /** 1 for the spool's current state, 0 for the others. */
  readonly spoolState: Gauge<'volume' | 'state'>;
  readonly journalBytes: Gauge<'volume'>;
  readonly checkpointBytes: Gauge<'volume'>;
  readonly restoreDuration: Histogram<'volume' | 'kind'>;
  readonly restoreBytes: Counter<'volume'>;
  readonly diffDuration: Histogram<'volume'>;
  readonly reconnects: Counter<'volume'>;
  readonly shipperBytesSent: Counter<'volume'>;
  /** Register a function run before every render (cheap: copies in-memory status). */
  onScrape(hook: () => void | Promise<void>): () => void;
  /** Run the scrape hooks, then the Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
}

export const SPOOL_STATES = ['ok', 'blocked', 'dirty-tracking'] as const;

/** Seconds buckets from 1 ms to ~30 min: diffs are milliseconds, full restores minutes. */
const DURATION_BUCKETS = [0.001, 0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

export function createRewindMetrics(opts: { prefix?: string } = {}): RewindMetrics {
  const p = opts.prefix ?? 'rewind_';
  const registry = new Registry();
  const registers = [registry];
  const hooks = new Set<() => void | Promise<void>>();
  const m: RewindMetrics = {
    registry,
    entriesAppended: new Counter({ name: `${p}entries_appended_total`, help: 'Journal entries appended durably by the collector', labelNames: ['volume'], registers }),
    bytesAppended: new Counter({ name: `${p}bytes_appended_total`, help: 'Payload bytes of entries appended durably by the collector', labelNames: ['volume'], registers }),
    durableSeq: new Gauge({ name: `${p}durable_seq`, help: 'Highest contiguous durable seq', labelNames: ['volume'], registers }),
    latestDurableTime: new Gauge({ name: `${p}latest_durable_time_seconds`, help: 'Time of the latest durable entry (seconds since the epoch)', labelNames: ['volume'], registers }),
    lagSeconds: new Gauge({ name: `${p}lag_seconds`, help: 'Replication lag: node = now − oldest unacked entry; collector = now − latest durable entry', labelNames: ['volume', 'side'], registers }),
    spoolBytes: new Gauge({ name: `${p}spool_depth_bytes`, help: 'Bytes of spool segments on the node', labelNames: ['volume'], registers }),
    spoolRecords: new Gauge({ name: `${p}spool_depth_records`, help: 'Spool entries not yet acknowledged by the collector', labelNames: ['volume'], registers }),
    spoolState: new Gauge({ name: `${p}spool_state`, help: 'Spool state (1 = current)', labelNames: ['volume', 'state'], registers }),
    journalBytes: new Gauge({ name: `${p}journal_bytes`, help: 'Bytes of collector journal segments', labelNames: ['volume'], registers }),
    checkpointBytes: new Gauge({ name: `${p}checkpoint_bytes`, help: 'Allocated bytes of the collector checkpoint image', labelNames: ['volume'], registers }),
    restoreDuration: new Histogram({ name: `${p}restore_duration_seconds`, help: 'Restore (image or changed-blocks) duration', labelNames: ['volume', 'kind'], buckets: DURATION_BUCKETS, registers }),
    restoreBytes: new Counter({ name: `${p}restore_bytes_total`, help: 'Bytes emitted by restores', labelNames: ['volume'], registers }),
    diffDuration: new Histogram({ name: `${p}diff_duration_seconds`, help: 'Diff computation duration', labelNames: ['volume'], buckets: DURATION_BUCKETS, registers }),
    reconnects: new Counter({ name: `${p}shipper_reconnects_total`, help: 'Append stream reconnects by the shipper', labelNames: ['volume'], registers }),
    shipperBytesSent: new Counter({ name: `${p}shipper_bytes_sent_total`, help: 'Bytes of entries sent by the shipper', labelNames: ['volume'], registers }),
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
