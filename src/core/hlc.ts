/**
 * Hybrid logical clock in nanoseconds since the Unix epoch (Kulkarni et al. 2014, folded
 * into a single bigint). Every journal entry carries one: it tracks wall time closely
 * enough to restore "as of 14:03:07", yet never goes backwards when NTP steps the clock,
 * and is strictly increasing per clock so two entries never share an instant.
 */
export type WallClock = () => bigint;

/** Wall clock in ns. Date.now() is ms; hrtime adds sub-ms resolution anchored to it. */
export function systemWallClock(): WallClock {
  const anchorWall = BigInt(Date.now()) * 1_000_000n;
  const anchorMono = process.hrtime.bigint();
  let lastResync = anchorMono;
  let base = anchorWall - anchorMono;
  return () => {
    const mono = process.hrtime.bigint();
    // Re-anchor every 10 s so a long-lived process follows wall-clock corrections;
    // the HLC above keeps the result monotonic even if this steps back.
    if (mono - lastResync > 10_000_000_000n) {
      base = BigInt(Date.now()) * 1_000_000n - mono;
      lastResync = mono;
    }
    return base + mono;
  };
}

export class HybridClock {
  private last: bigint;
  private readonly wall: WallClock;

  constructor(wall: WallClock = systemWallClock(), start = 0n) {
    this.wall = wall;
    this.last = start;
  }

  /** A fresh timestamp, strictly greater than every one this clock has issued or observed. */
  now(): bigint {
    const w = this.wall();
    this.last = w > this.last ? w : this.last + 1n;
    return this.last;
  }

  /** Fold in a timestamp seen elsewhere (a recovered journal, a remote peer). */
  observe(t: bigint): void {
    if (t > this.last) this.last = t;
  }

  peek(): bigint {
    return this.last;
  }
}

/** Test clock: time moves only when told to. */
export class ManualWallClock {
  constructor(public ns: bigint = 1_700_000_000_000_000_000n) {}
  readonly read: WallClock = () => this.ns;
  advance(ns: bigint): void {
    this.ns += ns;
  }
}

export function nsToDate(ns: bigint): Date {
  return new Date(Number(ns / 1_000_000n));
}

/** RFC 3339 with nanoseconds, e.g. 2026-11-22T10:00:00.123456789Z. */
export function formatNs(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // ...SS.mmmZ
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${frac}Z`;
}
