/**
 * Retention policy (DESIGN §3): any point in time for `pointInTimeNs`, named marks for
 * `marksNs`, then nothing. We keep ONE checkpoint per volume, so a mark stays restorable
 * only while the log from the checkpoint to it is kept: consolidation therefore never
 * moves the checkpoint past the oldest retained mark. That costs log space for as long as
 * marks are kept, but needs no per-mark full image and keeps every retained mark exact.
 */
export interface RetentionPolicy {
  pointInTimeNs: bigint;
  marksNs: bigint;
}

/** The seq consolidation may fold up to, given the newest entry at or before the cutoff. */
export function consolidationTarget(args: {
  seqAtCutoff: bigint;
  oldestMarkSeq: bigint | undefined;
  checkpointSeq: bigint;
}): bigint {
  let t = args.seqAtCutoff;
  if (args.oldestMarkSeq !== undefined && args.oldestMarkSeq < t) t = args.oldestMarkSeq;
  return t > args.checkpointSeq ? t : args.checkpointSeq;
}
