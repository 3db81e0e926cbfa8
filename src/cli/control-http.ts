import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { isRewindError } from '../core/errors.js';
import { formatNs } from '../core/hlc.js';
import type { Logger } from '../core/logger.js';
import type { Spool } from '../ship/spool.js';
import type { RangeLock } from '../ship/range-lock.js';
import type { ListenAddress } from './listen-address.js';

/**
 * The small control API of `rewind serve`: marks and status. A mark holds the whole
 * device lock while it is appended, so it lands after every write acknowledged before the
 * request and before every write that starts after it.
 */
export async function startControlHttp(
  addr: ListenAddress,
  deps: { spool: Spool; lock: RangeLock; size: bigint; logger: Logger },
): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ logger: false });
  app.setErrorHandler((err, _req, reply) => {
    const status = isRewindError(err) ? (err.code === 'REWIND_ERR_INVALID_ARGUMENT' ? 400 : 500) : (err as { statusCode?: number }).statusCode ?? 500;
    void reply.status(status).send(isRewindError(err) ? err.toJSON() : { code: 'REWIND_ERR_INTERNAL', message: (err as Error).message });
  });
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/v1/status', async () => ({
    size: deps.size.toString(),
    lastSeq: deps.spool.lastSeq.toString(),
    durableSeq: deps.spool.durableSeq.toString(),
    spoolBytes: deps.spool.bytes,
    state: deps.spool.state,
  }));
  app.post<{ Body: { name?: unknown } }>('/v1/marks', async (req, reply) => {
    const name = req.body?.name;
    if (typeof name !== 'string' || name.length === 0 || name.length > 253) {
      return reply.status(400).send({ code: 'REWIND_ERR_INVALID_ARGUMENT', message: 'body must be {"name": "<1-253 characters>"}' });
    }
    const release = await deps.lock.acquireAll(deps.size);
    try {
      const rec = await deps.spool.mark(name);
      await deps.spool.sync();
      return reply.status(201).send({ name, seq: rec.seq.toString(), time: formatNs(rec.time), timeNs: rec.time.toString() });
    } finally {
      release();
    }
  });
  await app.listen('path' in addr ? { path: addr.path } : { host: addr.host, port: addr.port });
  const a = app.server.address();
  const url = typeof a === 'string' ? `unix:${a}` : `http://${(a as AddressInfo).address.includes(':') ? `[${(a as AddressInfo).address}]` : (a as AddressInfo).address}:${(a as AddressInfo).port}`;
  return { url, close: () => app.close() };
}
