import type { JournalRecord } from '../../journal/record.js';
import type { MarkInfo, PointSpec, ResolvedPoint, StoreExtent, VolumeStatusInfo } from '../../rpc/api-types.js';

/**
 * What the gRPC service needs of the collector store (src/collector/store/). Declared
 * here so the service depends on a narrow port, not on the store's internals; the real
 * store is adapted to it in store-adapter.ts. Every method may be sync or async. The
 * values it speaks in are the API's own (src/rpc/api-types.ts).
 */
export type { MarkInfo, PointSpec, ResolvedPoint, StoreExtent, VolumeStatusInfo };

/** Receives a restored image in ascending offset order, each byte at most once. */
export interface RestoreSink {
  write(offset: bigint, data: Buffer): Promise<void>;
  zero(offset: bigint, length: bigint): Promise<void>;
}

export interface VolumePort {
  readonly name: string;
  readonly size: bigint;
  readonly durableSeq: bigint;
  /** Newest entry time the volume holds (a writer's times must be above it). */
  readonly latestTime: bigint;
  readonly generation: bigint;
  /** True when `token` is this volume's token (the store keeps it with the volume). */
  checkToken(token: string): boolean;
  /**
   * Resolves, once durable, with a seq that covers these records and every earlier call's
   * (marks among them learned). May be called again before an earlier call resolves: calls
   * are applied and resolve in call order, and seqs an earlier call already took are
   * ignored (so resends are idempotent); JOURNAL_SEQ_GAP on a gap.
   */
  append(records: JournalRecord[]): Promise<bigint>;
  /** With `id`: the mark that already has it is returned unchanged (VolumeStore.addMark). */
  addMark(name: string, at?: PointSpec, opts?: { id?: string }): Promise<MarkInfo> | MarkInfo;
  /** True when a mark was deleted, false when none had that id / name. */
  deleteMark(key: { id: string } | { name: string }): Promise<boolean>;
  /** Record durably that a restore writer wrote seqs fromSeq..toSeq (VolumeMeta.lastRestore). */
  noteRestore(fromSeq: bigint, toSeq: bigint): Promise<void>;
  /** Replace the volume's token (rotation), durably. */
  setToken(token: string): Promise<void>;
  marks(): Promise<MarkInfo[]> | MarkInfo[];
  resolve(point: PointSpec): Promise<ResolvedPoint> | ResolvedPoint;
  restore(point: PointSpec, sink: RestoreSink, opts?: { changedSince?: PointSpec; onProgress?: (doneBytes: bigint) => void }): Promise<void>;
  diff(from: PointSpec, to: PointSpec): Promise<StoreExtent[]> | StoreExtent[];
  allocated(point: PointSpec): Promise<StoreExtent[]> | StoreExtent[];
  status(): Promise<VolumeStatusInfo> | VolumeStatusInfo;
  /**
   * The planner's plan (docs/planner.md) for a query given as text, fields as on the HTTP
   * API. Optional: a port without a planner answers GetPlan with UNSUPPORTED.
   */
  plan?(query: Record<string, string | undefined>): unknown;
}

export interface StorePort {
  /** Undefined when no such volume. */
  volume(name: string): Promise<VolumePort | undefined> | VolumePort | undefined;
  createVolume(name: string, size: bigint, opts: { token: string }): Promise<VolumePort> | VolumePort;
  volumeNames(): Promise<string[]> | string[];
  /** Remove a volume and its history; false when there was none. */
  deleteVolume(name: string): Promise<boolean>;
}
