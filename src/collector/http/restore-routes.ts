import type { FastifyInstance } from 'fastify';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { formatNs } from '../../core/hlc.js';
import type { CollectorStore } from '../store/collector-store.js';
import type { Point, VolumeStore } from '../store/volume-store.js';
import type { RestoreJobs } from '../jobs/restore-jobs.js';
import { parsePointParam } from './point-param.js';

/** A node's clock may run this far ahead of ours before its instants count as the future. */
const FUTURE_SKEW_NS = 5_000_000_000n;

function volumeOf(store: CollectorStore, name: string): VolumeStore {
  const v = store.volume(name);
  if (!v) throw new RewindError(ErrorCodes.NOT_FOUND, `no volume "${name}" in this collector; list volumes with GET /v1/volumes`, { details: { volume: name } });
  return v;
}

/**
 * The point of a restore job: `at` (an instant, `mark:NAME`, `seq:N`) or `mark` (a mark
 * name), exactly one. An instant in the future is refused rather than read as "the latest
 * state": the image would not be the volume as of that instant, only as far as the
 * collector has heard, and a job's result should not depend on when it ran.
 */
export function restorePoint(vol: VolumeStore, body: Record<string, unknown>, nowNs: bigint): { point: Point; text: string } {
  const hasAt = body.at !== undefined && body.at !== null;
  const hasMark = body.mark !== undefined && body.mark !== null;
  if (hasAt === hasMark) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'give exactly one of body.at (an instant: RFC 3339, "90s ago", ns; or "mark:NAME", "seq:N") and body.mark (a mark name)', { details: { parameter: 'at' } });
  if (hasMark && (typeof body.mark !== 'string' || body.mark === '')) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'body.mark must be a mark name (list them with GET /v1/volumes/:v/marks)', { details: { parameter: 'mark' } });
  const text = hasMark ? `mark:${body.mark as string}` : String(body.at);
  const point = parsePointParam(hasMark ? text : body.at, 'at');
  if ('time' in point) {
    const latest = vol.window().latest;
    const limit = (nowNs > latest ? nowNs : latest) + FUTURE_SKEW_NS;
    if (point.time > limit) {
      throw new RewindError(ErrorCodes.OUT_OF_RANGE, `volume ${vol.name}: ${formatNs(point.time)} is in the future (latest durable ${formatNs(latest)}); pick an instant inside the restorable window`, { details: { volume: vol.name, at: point.time, latest } });
    }
  }
  return { point, text };
}

/**
 * Restore jobs over HTTP:
 * - `POST /v1/volumes/:v/restores {at | mark, path}` → 202 and the job (Location: its URL);
 * - `GET /v1/restores` → `{restoreDir, restores}`; `GET /v1/restores/:id` → the job
 *   (state running|done|failed|cancelled, bytesDone, bytesTotal, sha256 once done);
 * - `DELETE /v1/restores/:id` cancels a running one.
 */
export function registerRestoreRoutes(app: FastifyInstance, store: CollectorStore, jobs: RestoreJobs): void {
  app.get('/v1/restores', async () => ({ restoreDir: jobs.restoreDir ?? null, restores: jobs.list() }));
  app.get<{ Params: { id: string } }>('/v1/restores/:id', async (req) => jobs.get(req.params.id));
  app.delete<{ Params: { id: string } }>('/v1/restores/:id', async (req) => jobs.cancel(req.params.id));
  app.post<{ Params: { v: string } }>('/v1/volumes/:v/restores', async (req, reply) => {
    const vol = volumeOf(store, req.params.v);
    const body = req.body;
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'the request body must be a JSON object {at | mark, path}');
    }
    const b = body as Record<string, unknown>;
    const { point, text } = restorePoint(vol, b, BigInt(Date.now()) * 1_000_000n);
    const job = await jobs.start(vol, point, text, b.path);
    return reply.status(202).header('location', `/v1/restores/${job.id}`).send(job);
  });
}
