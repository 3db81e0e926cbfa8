export { CollectorStore, type CollectorStoreOptions } from './collector-store.js';
export { VolumeStore, describePoint, type Point, type MarkInfo } from './volume-store.js';
export type { RestoreChunk, RestoreSink } from './image-emitter.js';
export type { DiffExtent, Extent } from './image-plan.js';
export type { ScrubProblem } from './scrub.js';
export type { RetentionPolicy } from './retention.js';
export { orBitmaps, popcount, type IntervalBitmap } from './change-bitmaps.js';
