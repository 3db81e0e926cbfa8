import type { FastifyInstance } from 'fastify';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { parseBound, windowOf, type ActivitySource } from '../planner/window.js';
import type { CollectorStore } from '../store/collector-store.js';
import type { VolumeStore } from '../store/volume-store.js';

/**
 * The planner's HTTP routes (DESIGN §3 Planner; shapes in docs/planner.md):
 *   GET /v1/volumes/:v/activity?from=&to=      the per-interval series (the timeline charts it)
 */
export function registerPlanRoutes(app: FastifyInstance, store: CollectorStore): void {
  type Q = { Querystring: Record<string, string | undefined> };

  app.get<{ Params: { v: string } } & Q>('/v1/volumes/:v/activity', async (req) => {
    const src = sourceOf(volumeOf(store, req.params.v));
    const w = windowOf(src, parseBound(req.query.from, 'from', src), parseBound(req.query.to, 'to', src));
    return {
      volume: src.name,
      intervalNs: w.intervalNs,
      from: w.start,
      to: w.end,
      intervals: w.intervals.map((x) => ({ start: x.start, end: x.end, writtenBytes: x.writtenBytes, uniqueBytes: x.uniqueBytes, writeOps: x.writeOps })),
    };
  });
}

function volumeOf(store: CollectorStore, name: string): VolumeStore {
  const v = store.volume(name);
  if (!v) throw new RewindError(ErrorCodes.NOT_FOUND, `no volume "${name}" in this collector; list volumes with GET /v1/volumes`, { details: { volume: name } });
  return v;
}

export function sourceOf(vol: VolumeStore): ActivitySource {
  const a = vol.activity();
  const w = vol.window();
  return {
    name: vol.name, intervalNs: a.intervalNs, intervals: a.intervals, historyStartNs: w.earliest, latestNs: w.latest,
    markTime: (n) => vol.marks().find((m) => m.name === n)?.time,
  };
}
