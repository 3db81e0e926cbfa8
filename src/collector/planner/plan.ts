import { ErrorCodes, RewindError } from '../../core/errors.js';
import { drainSeconds, requiredBandwidth, simulateQueue, type QueueRun, type Slot } from './queue.js';
import { runBytes, unionBytes, type Runs } from './run-set.js';
import type { Window } from './window.js';

/** What to plan for; every field is optional, and each adds its section to the plan. */
export interface PlanParams {
  /** Target RPO (s): the lag the link must never exceed → `rpo`. */
  rpoSeconds?: number;
  /** Speed of one link (bytes/s) → `links`: how many of them the recommendation needs. */
  linkBytesPerSecond?: number;
  /** Outage length (s) → `resync`: the worst resync over the window. */
  outageSeconds?: number;
  /** A link the caller has (bytes/s) → `bandwidth`: the RPO it achieves. */
  bandwidthBytesPerSecond?: number;
  /**
   * What the link ships: `written` (every write, no coalescing; the default — what the
   * shipper sends unless coalescing is on) or `unique` (each interval's distinct bytes:
   * coalescing over a window as long as the interval).
   */
  basis?: 'written' | 'unique';
}

export interface Rates {
  /** Bytes per second. */
  peak: number;
  p95: number;
  mean: number;
}

export interface LagCurvePoint {
  /** End of the interval (ns). */
  t: bigint;
  queuedBytes: number;
  lagSeconds: number;
}

export interface Plan {
  window: { from: bigint; to: bigint; intervalNs: bigint; intervals: number; seconds: number };
  basis: 'written' | 'unique';
  bytes: {
    written: number;
    /** Distinct bytes over the whole window (the OR of the interval maps): a resync of the window. */
    unique: number;
    /** Sum of each interval's distinct bytes: what coalescing within each interval ships. */
    uniqueByInterval: number;
    /** written − unique, and its share of written (0 when nothing was written). */
    coalescingSavings: number;
    savingsRatio: number;
    /** Some interval's map was coarsened: `unique` is an upper bound (and at most `written`). */
    approximate: boolean;
  };
  rates: { written: Rates; unique: Rates };
  rpo?: { targetSeconds: number; recommendedBandwidth: number; maxLagSeconds: number; curve: LagCurvePoint[] };
  links?: { linkBandwidth: number; count: number };
  bandwidth?: { bandwidth: number; achievedRpoSeconds: number; keepsUp: boolean; finalQueuedBytes: number; curve: LagCurvePoint[] };
  resync?: {
    outageSeconds: number;
    /** Whole intervals the outage is taken to cover (rounded up). */
    intervals: number;
    /** Distinct bytes written during the worst outage: what a resync sends. */
    resyncBytes: number;
    /** Bytes written during it: what a spool that kept every entry would send. */
    backlogBytes: number;
    /** The link the time is for (the given bandwidth, else the recommended one); absent: none given. */
    bandwidth?: number;
    /** Seconds from the outage's end until the link has caught up; null: it never does. */
    seconds?: number | null;
    /** Start (ns) of the outage placement that gave the worst time. */
    worstStart: bigint;
  };
  warnings: string[];
}

/** Outage placements tried at most (evenly spread, plus the busiest); each is a union of maps. */
export const MAX_OUTAGE_PLACEMENTS = 256;

export function rates(perSecond: number[], totalBytes: number, seconds: number): Rates {
  if (perSecond.length === 0) return { peak: 0, p95: 0, mean: 0 };
  const sorted = perSecond.slice().sort((a, b) => a - b);
  // Nearest rank: the smallest value at or above 95 % of the intervals.
  const p95 = sorted[Math.max(0, Math.ceil(0.95 * sorted.length) - 1)]!;
  return { peak: sorted[sorted.length - 1]!, p95, mean: seconds > 0 ? totalBytes / seconds : 0 };
}

/**
 * A plan over windows on one grid: one window for a volume, several for a group that shares
 * a link (bytes add up per interval; distinct bytes are the OR within each volume, summed
 * across volumes, since volumes do not share blocks).
 */
export function planWindows(windows: Window[], p: PlanParams = {}): Plan {
  if (windows.length === 0) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'a plan needs at least one volume');
  const w0 = windows[0]!;
  for (const w of windows) {
    if (w.intervalNs !== w0.intervalNs || w.start !== w0.start || w.intervals.length !== w0.intervals.length) {
      throw new RewindError(ErrorCodes.INTERNAL, 'planner windows of a group are not on one grid; every volume of a collector uses its interval');
    }
  }
  const n = w0.intervals.length;
  const I = Number(w0.intervalNs) / 1e9;
  const basis = p.basis ?? 'written';
  const written = new Array<number>(n).fill(0);
  const uniq = new Array<number>(n).fill(0);
  let approximate = false;
  for (const w of windows) {
    w.intervals.forEach((x, i) => {
      written[i] += x.writtenBytes;
      uniq[i] += x.uniqueBytes;
      if (x.grain > 1) approximate = true;
    });
  }
  const totalWritten = sum(written);
  const uniqueByInterval = sum(uniq);
  const unique = sum(windows.map((w) => distinctBytes(w, 0, n)));
  const seconds = n * I;
  const slots: Slot[] = (basis === 'written' ? written : uniq).map((bytes) => ({ seconds: I, bytes }));
  const meanRate = seconds > 0 ? sum(slots.map((s) => s.bytes)) / seconds : 0;
  const ends = w0.intervals.map((x) => x.end);
  const curveOf = (r: QueueRun): LagCurvePoint[] => r.curve.map((c, i) => ({ t: ends[i]!, queuedBytes: c.queuedBytes, lagSeconds: c.lagSeconds }));

  const plan: Plan = {
    window: { from: w0.start, to: w0.end, intervalNs: w0.intervalNs, intervals: n, seconds },
    basis,
    bytes: {
      written: totalWritten, unique, uniqueByInterval, coalescingSavings: totalWritten - unique,
      savingsRatio: totalWritten > 0 ? (totalWritten - unique) / totalWritten : 0, approximate,
    },
    rates: {
      written: rates(written.map((b) => b / I), totalWritten, seconds),
      unique: rates(uniq.map((b) => b / I), uniqueByInterval, seconds),
    },
    warnings: [],
  };
  if (approximate) plan.warnings.push('some intervals had more distinct runs than the planner keeps and were coarsened to blocks: unique bytes are an upper bound');

  if (p.rpoSeconds !== undefined) {
    const b = requiredBandwidth(slots, p.rpoSeconds);
    const run = simulateQueue(slots, b);
    plan.rpo = { targetSeconds: p.rpoSeconds, recommendedBandwidth: b, maxLagSeconds: run.maxLagSeconds, curve: curveOf(run) };
    if (p.rpoSeconds < I) {
      plan.warnings.push(`the series has one point per ${I} s interval and spreads each interval's writes evenly over it; for an RPO below the interval a burst inside one can need more than recommended — use a shorter planner interval`);
    }
    if (p.linkBytesPerSecond !== undefined) plan.links = { linkBandwidth: p.linkBytesPerSecond, count: Math.ceil(b / p.linkBytesPerSecond - 1e-9) };
  } else if (p.linkBytesPerSecond !== undefined) {
    plan.warnings.push('link needs rpo: the number of links is counted against the bandwidth an RPO target needs');
  }

  if (p.bandwidthBytesPerSecond !== undefined) {
    const b = p.bandwidthBytesPerSecond;
    const run = simulateQueue(slots, b);
    plan.bandwidth = { bandwidth: b, achievedRpoSeconds: run.maxLagSeconds, keepsUp: b > meanRate || meanRate === 0, finalQueuedBytes: run.finalQueuedBytes, curve: curveOf(run) };
  }

  if (p.outageSeconds !== undefined) {
    const link = p.bandwidthBytesPerSecond ?? plan.rpo?.recommendedBandwidth;
    plan.resync = resync(windows, slots, written, p.outageSeconds, I, link, meanRate, plan.warnings);
  }
  return plan;
}

function resync(windows: Window[], slots: Slot[], written: number[], outageSeconds: number, I: number, link: number | undefined, meanRate: number, warnings: string[]): NonNullable<Plan['resync']> {
  const n = slots.length;
  let m = Math.max(1, Math.ceil(outageSeconds / I - 1e-9));
  if (m > n) {
    warnings.push(`the outage (${outageSeconds} s) is longer than the window (${n * I} s): the resync is for the whole window`);
    m = n;
  }
  const starts: number[] = [];
  const count = n - m + 1;
  const step = Math.max(1, Math.ceil(count / MAX_OUTAGE_PLACEMENTS));
  for (let k = 0; k < count; k += step) starts.push(k);
  // The busiest placement by bytes written is always tried.
  let busiest = 0;
  let acc = 0;
  let best = -1;
  for (let k = 0; k < n; k++) {
    acc += written[k]!;
    if (k >= m) acc -= written[k - m]!;
    if (k >= m - 1 && acc > best) (best = acc), (busiest = k - m + 1);
  }
  if (!starts.includes(busiest)) starts.push(busiest);

  let worst: NonNullable<Plan['resync']> | undefined;
  for (const k of starts) {
    const resyncBytes = sum(windows.map((w) => distinctBytes(w, k, k + m)));
    const backlogBytes = sum(written.slice(k, k + m));
    const seconds = link === undefined ? undefined : drainSeconds(resyncBytes, slots.slice(k + m), link, meanRate);
    const r = { outageSeconds, intervals: m, resyncBytes, backlogBytes, ...(link === undefined ? {} : { bandwidth: link, seconds }), worstStart: windows[0]!.intervals[k]?.start ?? windows[0]!.start };
    if (!worst || worse(r, worst)) worst = r;
  }
  return worst!;
}

/** Never catching up is worst, then the longer time, then more bytes. */
function worse(a: NonNullable<Plan['resync']>, b: NonNullable<Plan['resync']>): boolean {
  if (a.seconds === null || b.seconds === null) return a.seconds === null && b.seconds !== null;
  if (a.seconds !== undefined && b.seconds !== undefined && a.seconds !== b.seconds) return a.seconds > b.seconds;
  return a.resyncBytes > b.resyncBytes;
}

/**
 * Distinct bytes of one volume over intervals [from, to): the OR of their maps, never more
 * than what those intervals wrote (a coarsened map over-covers).
 */
function distinctBytes(w: Window, from: number, to: number): number {
  const maps: Runs[] = [];
  let wrote = 0;
  let exactMax = 0;
  for (let i = from; i < to && i < w.intervals.length; i++) {
    const x = w.intervals[i]!;
    if (x.runs.length > 0) maps.push(x.runs);
    wrote += x.writtenBytes;
    exactMax = Math.max(exactMax, x.uniqueBytes);
  }
  const u = maps.length === 1 ? runBytes(maps[0]!) : unionBytes(maps);
  return Math.max(exactMax, Math.min(u, wrote));
}

function sum(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}
