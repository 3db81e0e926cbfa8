/**
 * Collector storage (DESIGN §3 "Collector storage", "Diff"). On disk, per volume:
 *
 *   <dataDir>/volumes/<name>/volume.json        name, size, generation, token
 *                            journal/*.seg      the journal segment format (docs/journal-format.md)
 *                            checkpoints/<seq>.img|.json   sparse image + CRC'd manifest
 *                            marks.json         named points with their ids, and deleted mark
 *                                               records' tombstones (mark-book.ts; atomic rename)
 *
 * - Time→seq index and record offsets: in memory, rebuilt on open from segment headers
 *   (entry-index.ts, segment-locator.ts); 16k records of 256 KiB open in ~0.2–0.9 s.
 * - Restore walks back from the point with a byte-exact coverage set (coverage.ts), reads
 *   each byte once, fills the rest from the checkpoint (image-plan.ts, image-emitter.ts).
 * - Diff is byte-exact from the log, then checked against both images: equals cmp at
 *   512-byte granularity (diff-refine.ts); `exact: false` skips the check.
 * - One checkpoint per volume; consolidation never passes the oldest retained mark
 *   (retention.ts). The planner's first-update maps per interval are recorded from
 *   the index as appends are taken in and kept in planner/ (../planner/activity.ts).
 */
export { CollectorStore, type CollectorStoreOptions } from './collector-store.js';
export { VolumeStore, describePoint, type Point, type MarkInfo } from './volume-store.js';
export type { RestoreChunk, RestoreSink } from './image-emitter.js';
export type { DiffExtent, Extent } from './image-plan.js';
export type { ScrubProblem } from './scrub.js';
export type { RetentionPolicy } from './retention.js';
