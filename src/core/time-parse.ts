import { ErrorCodes, RewindError } from './errors.js';

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
  d: 86_400_000_000_000n,
};

/**
 * Parse a user-supplied instant into ns since the epoch. Accepts RFC 3339 (fractional
 * seconds kept to the ns), raw `@<ns>` / bare integer ns, `now`, and relative forms
 * "90s ago", "5m ago", "1h30m ago".
 */
export function parseInstant(text: string, nowNs: bigint = BigInt(Date.now()) * 1_000_000n): bigint {
  const s = text.trim();
  if (s === 'now') return nowNs;
  if (/^@?\d+$/.test(s)) return BigInt(s.replace('@', ''));
  const rel = /^((?:\d+(?:ns|us|ms|s|m|h|d))+)\s+ago$/.exec(s);
  if (rel) return nowNs - parseDuration(rel[1]!);
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (m) {
    const [year, month, day, hour, minute, second, , , , offH, offM] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
    // Date.parse would roll 2026-02-30 over to March 2 and accept 24:00: a restore to a day
    // the user did not mean. Every field must be in range (no leap second: the clock the
    // journal uses never shows :60).
    if (month! >= 1 && month! <= 12 && day! >= 1 && day! <= daysIn(year!, month!) && hour! <= 23 && minute! <= 59 && second! <= 59 && offH! <= 23 && offM! <= 59) {
      const offsetMs = (m[9] === '-' ? -1 : 1) * (offH! * 60 + offM!) * 60_000;
      const whole = utcMs(year!, month! - 1, day!, hour!, minute!, second!) - offsetMs;
      return BigInt(whole) * 1_000_000n + BigInt((m[7] ?? '').padEnd(9, '0'));
    }
  }
  throw new RewindError(
    ErrorCodes.INVALID_ARGUMENT,
    `cannot read "${text}" as an instant; use RFC 3339 (2026-11-22T10:00:00.5Z), "90s ago", "now", or ns since the epoch`,
  );
}

/** Date.UTC without its reading of years 0–99 as 1900–1999. */
function utcMs(year: number, monthIndex: number, day: number, hour = 0, minute = 0, second = 0): number {
  const d = new Date(Date.UTC(2000, monthIndex, day, hour, minute, second));
  d.setUTCFullYear(year, monthIndex, day);
  return d.getTime();
}

function daysIn(year: number, month: number): number {
  return new Date(utcMs(year, month, 0)).getUTCDate();
}

/** "1h30m", "90s", "250ms" → ns. */
export function parseDuration(text: string): bigint {
  const s = text.trim();
  const re = /(\d+)(ns|us|ms|s|m|h|d)/gy;
  let total = 0n;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += BigInt(m[1]!) * UNIT_NS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== s.length) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `cannot read "${text}" as a duration; use forms like 90s, 5m, 1h30m, 250ms`);
  }
  return total;
}

/** "1G", "512M", "4096", "64KiB" → bytes. */
export function parseSize(text: string): bigint {
  const m = /^(\d+)\s*([kmgtp]?)(i?b)?$/i.exec(text.trim());
  if (!m) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `cannot read "${text}" as a size; use bytes or a suffix: 512M, 1G, 64KiB`);
  }
  const mult: Record<string, bigint> = { '': 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n, p: 1n << 50n };
  return BigInt(m[1]!) * mult[m[2]!.toLowerCase()]!;
}
