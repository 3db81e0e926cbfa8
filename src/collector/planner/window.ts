import { ErrorCodes, RewindError } from '../../core/errors.js';
import { parseInstant } from '../../core/time-parse.js';
import type { IntervalActivity } from './activity.js';

/** The most intervals one answer carries (a week of 60 s intervals is 10 080). */
export const MAX_WINDOW_INTERVALS = 100_000;

/** What a volume offers the planner (VolumeStore.activity() and its marks). */
export interface ActivitySource {
  name: string;
  intervalNs: bigint;
  intervals: IntervalActivity[];
  /** Start of the retained history (ns): zero-filled intervals begin no earlier. */
  historyStartNs: bigint;
  /** Newest durable time (ns). */
  latestNs: bigint;
  markTime(name: string): bigint | undefined;
}

/**
 * A window bound: an instant (RFC 3339, "90s ago", "now", ns) or `mark:NAME`. Marks name a
 * point of one volume, so a group's bounds are instants.
 */
export function parseBound(text: string | undefined, what: 'from' | 'to', src?: ActivitySource): bigint | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const s = text.trim();
  if (s.startsWith('mark:')) {
    if (!src) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what}: a mark names a point of one volume; give a group's window as instants`, { details: { parameter: what } });
    const t = src.markTime(s.slice(5));
    if (t === undefined) throw new RewindError(ErrorCodes.NOT_FOUND, `${what}: volume ${src.name} has no mark "${s.slice(5)}"; list marks with GET /v1/volumes/${src.name}/marks`, { details: { parameter: what, volume: src.name } });
    return t;
  }
  try {
    return parseInstant(s);
  } catch (err) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what}: ${(err as Error).message}, or mark:NAME`, { cause: err, details: { parameter: what } });
  }
}

/** One interval of a window: zero where the volume wrote nothing. */
export type WindowInterval = Omit<IntervalActivity, 'firstSeq' | 'lastSeq'>;

export interface Window {
  /** Aligned to the interval: [start of the interval holding `from`, end of the one holding `to`). */
  start: bigint;
  end: bigint;
  intervalNs: bigint;
  intervals: WindowInterval[];
}

const alignDown = (t: bigint, i: bigint) => t - (((t % i) + i) % i);

/** The whole retained history: from its start to the end of the newest interval. */
export function defaultBounds(src: ActivitySource): { from: bigint; to: bigint } {
  const I = src.intervalNs;
  const xs = src.intervals;
  const lastEnd = xs.length > 0 ? xs[xs.length - 1]!.end : alignDown(src.latestNs, I) + I;
  const from = xs.length > 0 && xs[0]!.start < src.historyStartNs ? xs[0]!.start : src.historyStartNs;
  return { from, to: lastEnd - 1n > src.latestNs ? lastEnd - 1n : src.latestNs };
}

/**
 * The volume's intervals overlapping [from, to], one per interval length with gaps filled by
 * zeros, so a chart and the queue simulation see time that passes without writes. Defaults:
 * from the start of the retained history to the end of the newest interval.
 */
export function windowOf(src: ActivitySource, from: bigint | undefined, to: bigint | undefined): Window {
  const I = src.intervalNs;
  const xs = src.intervals;
  const d = from === undefined || to === undefined ? defaultBounds(src) : undefined;
  const f = from ?? d!.from;
  const t = to ?? d!.to;
  if (t < f) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `the window ends (to) before it starts (from); give from ≤ to`, { details: { from: f, to: t } });
  const end = alignDown(t, I) + I;
  let start = alignDown(f, I);
  // A default window longer than an answer may be keeps its newest part; given bounds are refused.
  if (from === undefined && (end - start) / I > BigInt(MAX_WINDOW_INTERVALS)) start = end - BigInt(MAX_WINDOW_INTERVALS) * I;
  const n = (end - start) / I;
  if (n > BigInt(MAX_WINDOW_INTERVALS)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `the window holds ${n} intervals of ${Number(I) / 1e9} s, more than ${MAX_WINDOW_INTERVALS}; narrow it with from/to`, { details: { intervals: n } });
  }
  const out: WindowInterval[] = [];
  // Binary search for the first interval ending after start.
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]!.end <= start) lo = mid + 1;
    else hi = mid;
  }
  let j = lo;
  for (let s = start; s < end; s += I) {
    const a = xs[j];
    if (a && a.start === s) {
      const { firstSeq: _f, lastSeq: _l, ...rest } = a;
      out.push(rest);
      j++;
    } else {
      out.push({ start: s, end: s + I, writeOps: 0, writtenBytes: 0, zeroOps: 0, zeroedBytes: 0, uniqueBytes: 0, grain: 1, runs: new Float64Array(0) });
    }
  }
  return { start, end, intervalNs: I, intervals: out };
}
