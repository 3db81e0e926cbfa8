import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { isRewindError } from '../core/errors.js';
import { formatNs } from '../core/hlc.js';
import type { RewindMetrics } from '../metrics/rewind-metrics.js';
import type { NodeVolume } from '../ship/node-volume.js';
import type { ListenAddress } from './listen-address.js';

/**
 * The small control API of `rewind serve`: marks, status and the node side's Prometheus
 * `/metrics` (docs/metrics.md, side "node"). Marks go through the node volume, which
 * orders them with the writes around them.
 */
export async function startControlHttp(
  addr: ListenAddress,
  vol: NodeVolume,
  metrics?: RewindMetrics,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ logger: false });
  app.setErrorHandler((err, _req, reply) => {
    const status = isRewindError(err) ? (err.code === 'REWIND_ERR_INVALID_ARGUMENT' ? 400 : 500) : (err as { statusCode?: number }).statusCode ?? 500;
    void reply.status(status).send(isRewindError(err) ? err.toJSON() : { code: 'REWIND_ERR_INTERNAL', message: (err as Error).message });
  });
  app.get('/healthz', async () => ({ ok: true }));
  if (metrics) {
    app.get('/metrics', async (_req, reply) => {
      const text = await metrics.render();
      return reply.type(metrics.contentType).send(text);
    });
  }
  app.get('/v1/status', async () => ({
    size: vol.size.toString(),
    lastSeq: vol.spool.lastSeq.toString(),
    durableSeq: vol.spool.durableSeq.toString(),
    spoolBytes: vol.spool.bytes,
    state: vol.spool.state,
    // Degraded (reason FlushWaitTimeout) while a flush-sync wait passed --flush-wait-timeout.
    durability: vol.durability(),
  }));
  app.post<{ Body: { name?: unknown } }>('/v1/marks', async (req, reply) => {
    const name = req.body?.name;
    if (typeof name !== 'string' || name.length === 0 || name.length > 253) {
      return reply.status(400).send({ code: 'REWIND_ERR_INVALID_ARGUMENT', message: 'body must be {"name": "<1-253 characters>"}' });
    }
    const rec = await vol.mark(name);
    return reply.status(201).send({ name, seq: rec.seq.toString(), time: formatNs(rec.time), timeNs: rec.time.toString() });
  });
  await app.listen('path' in addr ? { path: addr.path } : { host: addr.host, port: addr.port });
  const a = app.server.address();
  const url = typeof a === 'string' ? `unix:${a}` : `http://${(a as AddressInfo).address.includes(':') ? `[${(a as AddressInfo).address}]` : (a as AddressInfo).address}:${(a as AddressInfo).port}`;
  return { url, close: () => app.close() };
}
