import type { FastifyInstance } from 'fastify';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { parsePlanParams } from '../planner/params.js';
import { planWindows } from '../planner/plan.js';
import { planVolume, sourceOf, volumeWindow } from '../planner/volume-plan.js';
import { defaultBounds, parseBound, windowOf } from '../planner/window.js';
import type { CollectorStore } from '../store/collector-store.js';
import type { VolumeStore } from '../store/volume-store.js';

/** Volumes one group plan may sum (each is a union of maps per outage placement). */
export const MAX_GROUP_VOLUMES = 256;

/**
 * The planner's HTTP routes (DESIGN §3 Planner; shapes in docs/planner.md):
 *   GET /v1/volumes/:v/activity?from=&to=      the per-interval series (the timeline charts it)
 *   GET /v1/volumes/:v/plan?from=&to=&rpo=&link=&outage=&bandwidth=&basis=
 *   GET /v1/plan?volumes=a,b&…                 the same for volumes sharing one link
 */
export function registerPlanRoutes(app: FastifyInstance, store: CollectorStore): void {
  type Q = { Querystring: Record<string, string | undefined> };

  app.get<{ Params: { v: string } } & Q>('/v1/volumes/:v/activity', async (req) => {
    const { src, window: w } = volumeWindow(volumeOf(store, req.params.v), req.query);
    return {
      volume: src.name,
      intervalNs: w.intervalNs,
      from: w.start,
      to: w.end,
      intervals: w.intervals.map((x) => ({ start: x.start, end: x.end, writtenBytes: x.writtenBytes, uniqueBytes: x.uniqueBytes, writeOps: x.writeOps })),
    };
  });

  app.get<{ Params: { v: string } } & Q>('/v1/volumes/:v/plan', async (req) => {
    // The query is checked before the volume is looked up, as the CLI checks it before asking.
    parsePlanParams(req.query);
    return planVolume(volumeOf(store, req.params.v), req.query);
  });

  app.get<Q>('/v1/plan', async (req) => {
    const names = [...new Set((req.query.volumes ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))];
    if (names.length === 0) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'volumes is required: a comma-separated list of the volumes that share the link (volumes=a,b)', { details: { parameter: 'volumes' } });
    if (names.length > MAX_GROUP_VOLUMES) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `a group plan takes at most ${MAX_GROUP_VOLUMES} volumes, got ${names.length}; split the group`, { details: { parameter: 'volumes' } });
    const params = parsePlanParams(req.query);
    const srcs = names.map((n) => sourceOf(volumeOf(store, n)));
    // One grid for every volume: the union of their default windows unless bounds are given.
    const bounds = srcs.map(defaultBounds);
    const from = parseBound(req.query.from, 'from') ?? bounds.reduce((a, b) => (b.from < a ? b.from : a), bounds[0]!.from);
    const to = parseBound(req.query.to, 'to') ?? bounds.reduce((a, b) => (b.to > a ? b.to : a), bounds[0]!.to);
    const windows = srcs.map((s) => windowOf(s, from, to));
    const perVolume = srcs.map((s, i) => {
      const { rpo, bandwidth, ...rest } = planWindows([windows[i]!], params);
      // Curves per volume would multiply the answer by the group's size: the group's carries them.
      return { volume: s.name, ...rest, ...(rpo ? { rpo: { ...rpo, curve: undefined } } : {}), ...(bandwidth ? { bandwidth: { ...bandwidth, curve: undefined } } : {}) };
    });
    return { volumes: names, ...planWindows(windows, params), perVolume };
  });
}

function volumeOf(store: CollectorStore, name: string): VolumeStore {
  const v = store.volume(name);
  if (!v) throw new RewindError(ErrorCodes.NOT_FOUND, `no volume "${name}" in this collector; list volumes with GET /v1/volumes`, { details: { volume: name } });
  return v;
}
