import { ErrorCodes, RewindError } from '../core/errors.js';

/**
 * Marks Rewind writes itself, around the times the collector's copy of a volume is only
 * partial: the node is resending the device (initial copy of a volume that held data,
 * full resync after a crash or a rebase, the extents a full spool could not journal).
 * Every instant from a RESEND_BEGIN to the next RESEND_END is refused by the collector
 * (REWIND_ERR_POINT_NOT_EXACT) instead of being restored as a mixture; the base-copy
 * ordering rule (src/ship/base-copy.ts) makes every instant from the RESEND_END on exact.
 * Being journal entries, they are ordered with the writes around them.
 */
export const RESERVED_MARK_PREFIX = 'rewind:';
export const RESEND_BEGIN_MARK = 'rewind:resend-begin';
export const RESEND_END_MARK = 'rewind:resend-end';

/** Names a user may give a mark: 1..253 characters, not in Rewind's own namespace. */
export function checkUserMarkName(name: string): void {
  if (!name || name.length > 253) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `mark name must be 1..253 characters`);
  if (name.startsWith(RESERVED_MARK_PREFIX)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `mark names starting with "${RESERVED_MARK_PREFIX}" are Rewind's own; choose another name`);
  }
}
