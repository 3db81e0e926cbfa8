import { startCollectorHttp, type CollectorHttp, type CollectorHttpOptions } from '../collector/http/index.js';
import { startCollectorGrpc, type CollectorGrpcServer } from '../collector/grpc/server.js';
import type { ServerTls } from '../collector/security.js';
import { CollectorStore } from '../collector/store/index.js';
import type { Logger } from '../core/logger.js';
import { createRewindMetrics, type RewindMetrics } from '../metrics/index.js';
import { trackCollectorStore } from '../metrics/observe.js';
import { removeStaleSocket, type ListenAddress } from './listen-address.js';

const RETENTION_EVERY_MS = 60_000;
export const DEFAULT_SCRUB_EVERY_MS = 24 * 3600_000;

/**
 * The collector side of a process — store, gRPC service, retention, metrics and (once
 * asked) the HTTP API — as `rewind up` and `rewind collector` both run it. Split in two
 * steps because `up` must have gRPC listening before its node opens (flush-sync waits for
 * the collector's Welcome) and the HTTP API after (its marks go through that node).
 */
export interface CollectorServiceOptions {
  /** The store's directory (volumes/ under it). */
  dataDir: string;
  grpcListen: ListenAddress;
  tls?: ServerTls;
  allowPlaintext?: boolean;
  /** See CollectorGrpcOptions.adminToken. */
  adminToken?: string;
  /** Any-point-in-time window; marks are kept seven times as long. */
  retentionNs: bigint;
  /** The planner's interval (default 60 s; docs/planner.md). */
  planIntervalNs?: bigint;
  /**
   * How often every volume's history is scrubbed (each CRC read back; DESIGN §1 "periodic
   * audit of the stored image"); 0 turns it off. Default 24 h: a scrub reads all the
   * history, so it runs seldom, one volume at a time, and first one interval after start.
   */
  scrubEveryMs?: number;
  /** The registry to export into (`rewind up` shares one with its node); default: a collector-only one. */
  metrics?: RewindMetrics;
  logger: Logger;
}

export interface CollectorService {
  readonly store: CollectorStore;
  readonly grpc: CollectorGrpcServer;
  readonly metrics: RewindMetrics;
  startHttp(o: Omit<CollectorHttpOptions, 'store' | 'metrics' | 'logger'>): Promise<CollectorHttp>;
  /** HTTP, then gRPC, then the store; stop the node side (if any) first. */
  close(): Promise<void>;
}

export async function startCollectorService(o: CollectorServiceOptions): Promise<CollectorService> {
  const log = o.logger;
  const store = await CollectorStore.open(o.dataDir, {
    retention: { pointInTimeNs: o.retentionNs, marksNs: o.retentionNs * 7n },
    ...(o.planIntervalNs !== undefined ? { planIntervalNs: o.planIntervalNs } : {}),
    logger: log.child({ component: 'store' }),
  });
  let grpc: CollectorGrpcServer;
  try {
    if ('path' in o.grpcListen) await removeStaleSocket(o.grpcListen.path);
    grpc = await startCollectorGrpc({
      store,
      listen: o.grpcListen,
      ...(o.tls ? { tls: o.tls } : {}),
      allowPlaintext: o.allowPlaintext === true,
      ...(o.adminToken !== undefined ? { adminToken: o.adminToken } : {}),
      logger: log.child({ component: 'grpc' }),
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  const metrics = o.metrics ?? createRewindMetrics({ sides: ['collector'] });
  const untrack = trackCollectorStore(metrics, store);

  const retention = setInterval(() => {
    for (const v of store.listVolumes()) {
      v.applyRetention(BigInt(Date.now()) * 1_000_000n).catch((err: unknown) => log.error('retention failed', { volume: v.name, err }));
    }
  }, RETENTION_EVERY_MS);
  retention.unref();

  // Scrub results reach rewind_scrub_* through the store's instrumented scrub (metrics/observe.ts).
  const scrubEvery = o.scrubEveryMs ?? DEFAULT_SCRUB_EVERY_MS;
  let scrubbing: Promise<void> | undefined;
  const scrubAll = async (): Promise<void> => {
    for (const v of store.listVolumes()) {
      try {
        const r = await v.scrub();
        if (!r.ok) log.error('scrub found damaged history', { volume: v.name, problems: r.problems.length, first: r.problems[0] });
      } catch (err) {
        log.error('scrub failed', { volume: v.name, err });
      }
    }
  };
  const scrubTimer = scrubEvery > 0
    ? setInterval(() => {
        scrubbing ??= scrubAll().finally(() => (scrubbing = undefined));
      }, scrubEvery)
    : undefined;
  scrubTimer?.unref();

  let http: CollectorHttp | undefined;
  return {
    store,
    grpc,
    metrics,
    async startHttp(h) {
      http = await startCollectorHttp({ ...h, store, metrics, logger: log.child({ component: 'http' }) });
      return http;
    },
    async close() {
      clearInterval(retention);
      clearInterval(scrubTimer);
      await scrubbing;
      await http?.close();
      untrack();
      await grpc.close();
      await store.close();
    },
  };
}
