import { parsePlanParams } from './params.js';
import { planWindows, type Plan } from './plan.js';
import { parseBound, windowOf, type ActivitySource, type Window } from './window.js';
import type { VolumeStore } from '../store/volume-store.js';

/** The plan query as the HTTP API (query string) and GetPlan (its fields) carry it: text, as a user typed it. */
export interface PlanQuery {
  from?: string;
  to?: string;
  rpo?: string;
  link?: string;
  outage?: string;
  bandwidth?: string;
  basis?: string;
}

/** What the planner reads of a volume: its activity and the bounds of its retained history. */
export function sourceOf(vol: VolumeStore): ActivitySource {
  const a = vol.activity();
  const w = vol.window();
  return {
    name: vol.name, intervalNs: a.intervalNs, intervals: a.intervals, historyStartNs: w.earliest, latestNs: w.latest,
    markTime: (n) => vol.marks().find((m) => m.name === n)?.time,
  };
}

/** The volume's window for `from`/`to` (instants or mark:NAME; default: its whole history). */
export function volumeWindow(vol: VolumeStore, q: Pick<PlanQuery, 'from' | 'to'>): { src: ActivitySource; window: Window } {
  const src = sourceOf(vol);
  return { src, window: windowOf(src, parseBound(q.from, 'from', src), parseBound(q.to, 'to', src)) };
}

/** One volume's plan (GET /v1/volumes/:v/plan, GetPlan). Parameters are checked before any work. */
export function planVolume(vol: VolumeStore, q: PlanQuery): { volume: string } & Plan {
  const params = parsePlanParams({ ...q });
  const { src, window } = volumeWindow(vol, q);
  return { volume: src.name, ...planWindows([window], params) };
}
