import Fastify, { type FastifyInstance } from 'fastify';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { parseInstant } from '../../core/time-parse.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type { RewindMetrics } from '../../metrics/rewind-metrics.js';
import { trackCollectorStore } from '../../metrics/observe.js';
import type { CollectorStore } from '../store/collector-store.js';
import type { MarkInfo, VolumeStore } from '../store/volume-store.js';
import { errorHandler, jsonWithBigints } from './error-reply.js';
import { startImageDownload } from './image-stream.js';
import { parsePointParam } from './point-param.js';
import { registerPlanRoutes } from './plan-routes.js';
import { registerTimelineRoutes } from './timeline-routes.js';

/** A node in this process that can put a mark into its spool (one-machine mode). */
export interface LocalNodeHook {
  mark(name: string): Promise<{ seq: bigint; time: bigint }>;
}

export interface CollectorHttpOptions {
  store: CollectorStore;
  listen: { host: string; port: number } | { path: string };
  metrics?: RewindMetrics;
  /** Volumes whose node runs in this process: marks without `at` go through its spool. */
  localNodes?: Map<string, LocalNodeHook>;
  /** Readiness beyond "the process is alive" (store open, gRPC listening). Default: ready. */
  ready?: () => boolean | Promise<boolean>;
  logger?: Logger;
  /** How long a node-side mark may take to reach the collector (default 30 s). */
  markWaitMs?: number;
  /** Where restore jobs (POST /v1/volumes/:v/restores) may write; without it they are refused. */
  restoreDir?: string;
}

export interface CollectorHttp {
  /** `http://host:port` or `http+unix://<percent-encoded socket path>`. */
  readonly url: string;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

const MARK_POLL_MS = 20;

function volumeOf(store: CollectorStore, name: string): VolumeStore {
  const v = store.volume(name);
  if (!v) throw new RewindError(ErrorCodes.NOT_FOUND, `no volume "${name}" in this collector; list volumes with GET /v1/volumes`, { details: { volume: name } });
  return v;
}

function bodyObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Wait (bounded) until a mark the node spooled at `seq` is durable and known to the store. */
async function awaitMark(vol: VolumeStore, name: string, seq: bigint, waitMs: number): Promise<MarkInfo> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const m = vol.marks().find((x) => x.name === name);
    if (m && vol.durableSeq >= seq) return m;
    if (Date.now() >= deadline) {
      throw new RewindError(ErrorCodes.TIMEOUT, `volume ${vol.name}: mark "${name}" (node seq ${seq}) did not reach the collector within ${waitMs} ms; check the shipper (lag, connection) and list marks again`, { details: { volume: vol.name, mark: name, seq } });
    }
    await new Promise((r) => setTimeout(r, MARK_POLL_MS));
  }
}

function registerRoutes(app: FastifyInstance, o: CollectorHttpOptions, log: Logger): void {
  const { store, metrics } = o;
  type P = { Params: { v: string } };

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    const ok = o.ready ? await o.ready() : true;
    if (!ok) return reply.status(503).send(new RewindError(ErrorCodes.UNAVAILABLE, 'collector not ready: store not open or gRPC not listening yet; retry shortly').toJSON());
    return { ready: true };
  });
  app.get('/metrics', async (_req, reply) => {
    if (!metrics) throw new RewindError(ErrorCodes.UNSUPPORTED, 'metrics are not enabled on this collector');
    const text = await metrics.render();
    return reply.type(metrics.contentType).serializer((s: unknown) => s as string).send(text);
  });

  app.get('/v1/volumes', async () => ({ volumes: store.listVolumes().map((v) => v.status()) }));
  app.get<P>('/v1/volumes/:v', async (req) => {
    const vol = volumeOf(store, req.params.v);
    return { ...vol.status(), marks: vol.marks() };
  });
  app.get<P>('/v1/volumes/:v/marks', async (req) => ({ marks: volumeOf(store, req.params.v).marks() }));
  app.post<P>('/v1/volumes/:v/marks', async (req, reply) => {
    const vol = volumeOf(store, req.params.v);
    const body = bodyObject(req.body);
    const name = body.name;
    if (typeof name !== 'string' || name === '') throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'body.name (the mark name) is required');
    let mark: MarkInfo;
    const node = o.localNodes?.get(vol.name);
    if (body.at !== undefined && body.at !== null) {
      if (typeof body.at !== 'string') throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'body.at must be an instant string (RFC 3339, "90s ago", ns)');
      mark = await vol.addMark(name, parseInstant(body.at));
    } else if (node) {
      // Through the node's spool, so the mark sits between the writes exactly where the
      // application called it, then wait for the collector to have it durably.
      const at = await node.mark(name);
      mark = await awaitMark(vol, name, at.seq, o.markWaitMs ?? 30_000);
    } else {
      mark = await vol.addMark(name);
    }
    return reply.status(201).send(mark);
  });

  app.get<P & { Querystring: { from?: string; to?: string } }>('/v1/volumes/:v/diff', async (req) => {
    const vol = volumeOf(store, req.params.v);
    const from = parsePointParam(req.query.from, 'from');
    const to = parsePointParam(req.query.to, 'to');
    const t0 = process.hrtime.bigint();
    const extents = await vol.diff(from, to);
    metrics?.diffDuration.observe({ volume: vol.name }, Number(process.hrtime.bigint() - t0) / 1e9);
    return { extents, changedBytes: extents.reduce((a, e) => a + e.length, 0n) };
  });

  app.get<P & { Querystring: { at?: string; changedSince?: string } }>('/v1/volumes/:v/image', async (req, reply) => {
    const vol = volumeOf(store, req.params.v);
    const at = parsePointParam(req.query.at, 'at');
    const changedSince = req.query.changedSince !== undefined ? parsePointParam(req.query.changedSince, 'changedSince') : undefined;
    const dl = startImageDownload({ vol, at, ...(changedSince ? { changedSince } : {}), log });
    reply.type(dl.contentType);
    if (dl.contentLength !== undefined) reply.header('content-length', dl.contentLength.toString());
    return reply.send(dl.stream);
  });

  app.post<P>('/v1/volumes/:v/scrub', async (req) => {
    const vol = volumeOf(store, req.params.v);
    return { volume: vol.name, ...(await vol.scrub()) };
  });
  app.post<P>('/v1/volumes/:v/consolidate', async (req) => {
    const vol = volumeOf(store, req.params.v);
    const upTo = parsePointParam(bodyObject(req.body).upTo, 'upTo');
    return { volume: vol.name, ...(await vol.consolidate(upTo)) };
  });
}

/**
 * The collector's HTTP side (fastify): JSON API for volumes, marks, diffs and images,
 * Prometheus `/metrics`, `/healthz`, `/readyz`. Bigints go out as decimal strings; errors
 * as `{code, message, details}` with the status their code maps to (error-reply.ts).
 */
export async function startCollectorHttp(o: CollectorHttpOptions): Promise<CollectorHttp> {
  const log = (o.logger ?? silentLogger).child({ component: 'collector-http' });
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.setReplySerializer((payload) => jsonWithBigints(payload));
  app.setErrorHandler(errorHandler(log));
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(new RewindError(ErrorCodes.NOT_FOUND, `no route ${req.method} ${req.url.split('?')[0]}; see the API under /v1/volumes`).toJSON());
  });
  registerRoutes(app, o, log);
  registerPlanRoutes(app, o.store);
  registerTimelineRoutes(app, o, log);
  const untrack = o.metrics ? trackCollectorStore(o.metrics, o.store) : undefined;
  let url: string;
  try {
    if ('path' in o.listen) {
      await app.listen({ path: o.listen.path });
      url = `http+unix://${encodeURIComponent(o.listen.path)}`;
    } else {
      await app.listen({ host: o.listen.host, port: o.listen.port });
      const a = app.server.address();
      const port = typeof a === 'object' && a ? a.port : o.listen.port;
      const host = o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host;
      url = `http://${host}:${port}`;
    }
  } catch (err) {
    untrack?.();
    await app.close().catch(() => undefined);
    throw new RewindError(ErrorCodes.UNAVAILABLE, `collector HTTP cannot listen on ${JSON.stringify(o.listen)}: ${(err as Error).message}; pick a free port or remove the stale socket`, { cause: err });
  }
  log.info('collector http listening', { url });
  return {
    url,
    app,
    async close() {
      untrack?.();
      await app.close();
    },
  };
}
