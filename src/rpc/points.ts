import { ErrorCodes, RewindError } from '../core/errors.js';
import { parseInstant } from '../core/time-parse.js';
import type { PointMsg } from './messages.js';
import type { PointSpec } from './api-types.js';

/** Proto Point → store point. An unset Point (or null) means now. */
export function toPointSpec(p: PointMsg | null | undefined): PointSpec {
  switch (p?.at) {
    case 'time_ns':
      return { time: BigInt(p.time_ns!) };
    case 'seq':
      return { seq: BigInt(p.seq!) };
    case 'mark':
      if (!p.mark) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'a Point with an empty mark name; give the mark to restore');
      return { mark: p.mark };
    case 'mark_id':
      if (!p.mark_id) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'a Point with an empty mark_id; give the id the mark was created with');
      return { markId: p.mark_id };
    case 'time':
      return { time: parseInstant(p.time!) };
    default:
      return { now: true };
  }
}

/** Store point → proto Point (for clients). */
export function toPointMsg(p: PointSpec): PointMsg {
  if ('time' in p) return { time_ns: p.time.toString() };
  if ('seq' in p) return { seq: p.seq.toString() };
  if ('mark' in p) return { mark: p.mark };
  if ('markId' in p) return { mark_id: p.markId };
  return {};
}
