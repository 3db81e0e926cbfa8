import { ErrorCodes, RewindError } from '../../core/errors.js';
import { parseDuration } from '../../core/time-parse.js';

const DECIMAL: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };
const BINARY: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * A link speed or bandwidth → bytes per second. Networks are sold in bits, disks in bytes,
 * so both: `100Mbit`, `100Mbps`, `1Gbit/s`, `10Mb` are bits (decimal prefixes); `50MB/s`,
 * `50MB` are bytes (decimal), `64MiB/s` bytes (binary); a bare number is bytes per second.
 * The case of the b/B is what tells bits from bytes.
 */
export function parseBandwidth(text: string, what: string): number {
  const s = text.trim();
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kKmMgGtT]?)(bit|bps|b)(?:\/s)?|([kKmMgGtT]?)(i?)B(?:\/s)?)?$/.exec(s);
  if (m) {
    const n = Number(m[1]);
    let v: number | undefined;
    if (m[3] !== undefined) v = (n * DECIMAL[m[2]!.toLowerCase()]!) / 8;
    else if (m[5] === 'i') v = m[4] ? n * BINARY[m[4].toLowerCase()]! : undefined;
    else v = n * DECIMAL[(m[4] ?? '').toLowerCase()]!;
    if (v !== undefined && Number.isFinite(v) && v > 0) return v;
    if (v === 0) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what} must be more than 0 (got "${text}")`, { details: { parameter: what } });
  }
  throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `cannot read ${what} "${text}" as a bandwidth; use bits (100Mbit, 1Gbps) or bytes per second (50MB/s, 64MiB/s, or a bare number)`, { details: { parameter: what } });
}

/** A duration that must be > 0 (an RPO target, an outage) → seconds. */
export function parsePositiveSeconds(text: string, what: string): number {
  let ns: bigint;
  try {
    ns = parseDuration(text);
  } catch (err) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what}: ${(err as Error).message}`, { cause: err, details: { parameter: what } });
  }
  if (ns <= 0n) {
    const hint = what === 'rpo' ? '; an RPO of 0 is what flush-sync durability gives, at any bandwidth' : '';
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what} must be more than 0 (got "${text}")${hint}`, { details: { parameter: what } });
  }
  return Number(ns) / 1e9;
}
