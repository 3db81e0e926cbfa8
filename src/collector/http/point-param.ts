import { ErrorCodes, RewindError } from '../../core/errors.js';
import { parseInstant } from '../../core/time-parse.js';
import type { Point } from '../store/volume-store.js';

/**
 * A point as written in a URL or JSON body: `mark:NAME`, `seq:N`, or an instant
 * (RFC 3339, "90s ago", "now", ns since the epoch — see parseInstant).
 */
export function parsePointParam(text: unknown, what: string): Point {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what} is required: an instant (RFC 3339, "90s ago", "now"), "mark:NAME" or "seq:N"`, { details: { parameter: what } });
  }
  const s = text.trim();
  if (s.startsWith('mark:')) {
    const mark = s.slice(5);
    if (!mark) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what}: "mark:" needs a mark name`, { details: { parameter: what } });
    return { mark };
  }
  if (s.startsWith('seq:')) {
    if (!/^\d+$/.test(s.slice(4))) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what}: "${s}" is not seq:<non-negative integer>`, { details: { parameter: what } });
    return { seq: BigInt(s.slice(4)) };
  }
  return { time: parseInstant(s) };
}
