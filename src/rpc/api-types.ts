/**
 * The collector API's values as both sides hold them in TypeScript (bigints, not the
 * wire's decimal strings): what a client asks for and what the service's store port
 * answers with. Shared so the client (collector-api.ts) and the service
 * (src/collector/grpc/) agree without either importing the other.
 */
export type PointSpec = { now: true } | { time: bigint } | { mark: string } | { markId: string } | { seq: bigint };

export interface ResolvedPoint {
  seq: bigint;
  time: bigint;
}

export interface MarkInfo {
  name: string;
  seq: bigint;
  time: bigint;
  /** The caller's key for the mark (CreateMark's id, e.g. a RestorePoint's UID); absent when made without one. */
  id?: string;
}

export interface StoreExtent {
  offset: bigint;
  length: bigint;
  /** Reads as zeroes in the younger point (trimmed / zeroed). */
  zero?: boolean;
}

export interface VolumeStatusInfo {
  name: string;
  size: bigint;
  generation: bigint;
  durableSeq: bigint;
  durableTime: bigint;
  windowOldest: bigint;
  windowNewest: bigint;
  journalBytes: bigint;
  detail?: Record<string, unknown>;
}
