/**
 * Hand-written TypeScript shapes of proto/rewind/v1alpha1/collector.proto and
 * proto/csi/snapshot-metadata.proto as proto-loader presents them (keepCase, longs as
 * decimal strings, oneofs named by their set field). Outgoing messages may use string
 * or number for 64-bit fields; incoming ones are always strings.
 */
export type U64 = string;
export type U64In = string | number;

export interface HelloMsg { volume: string; size: U64; generation: U64; token: string; last_durable_seq: U64; restore_writer?: boolean; durability?: string }
export interface WelcomeMsg { durable_seq: U64; generation: U64; latest_time_ns?: U64 }
export interface ReportMsg { latest_seq: U64In; latest_time_ns: U64In; spool_bytes: U64In; problem?: string; problem_message?: string }
/** 64-bit fields are bigints when the hand codec (append-codec.ts) decoded the batch. */
export interface EntryMsg {
  seq: U64 | bigint;
  time: U64 | bigint;
  kind: number;
  flags: number;
  offset: U64 | bigint;
  length: number;
  payload: Buffer;
  crc: number;
}
export interface BatchMsg { entries: EntryMsg[] }
export interface AckMsg { durable_seq: U64 }

export type AppendRequestMsg =
  | { msg: 'hello'; hello: HelloMsg; batch?: null; report?: null }
  | { msg: 'batch'; batch: BatchMsg; hello?: null; report?: null }
  | { msg: 'report'; report: ReportMsg; hello?: null; batch?: null };
export type AppendResponseMsg =
  | { msg: 'welcome'; welcome: WelcomeMsg; ack?: null }
  | { msg: 'ack'; ack: AckMsg; welcome?: null };

export interface PointMsg {
  at?: 'time_ns' | 'mark' | 'seq' | 'time' | 'mark_id';
  time_ns?: U64;
  mark?: string;
  seq?: U64;
  time?: string;
  mark_id?: string;
}

export interface MarkMsg { volume: string; name: string; seq: U64; time_ns: U64; id: string }
export interface CreateMarkRequestMsg { volume: string; token: string; name: string; at: PointMsg | null; id: string }
export interface DeleteMarkRequestMsg { volume: string; token: string; id: string; name: string }
export interface DeleteMarkResponseMsg { deleted: boolean }
export interface ListMarksRequestMsg { volume: string; token: string }
export interface ListMarksResponseMsg { marks: MarkMsg[] }

export interface RestoreRequestMsg { volume: string; token: string; at: PointMsg | null; changed_since: PointMsg | null }
export interface RestoreChunkMsg { offset: U64In; data: Buffer; zero_length: U64In; done_bytes: U64In; volume_size: U64In }

export interface ExtentMsg { offset: U64In; length: U64In; zero: boolean }
export interface DiffRequestMsg { volume: string; token: string; from: PointMsg | null; to: PointMsg | null }
export interface DiffResponseMsg { extents: ExtentMsg[] }

export interface GetVolumeStatusRequestMsg { volume: string; token: string }
export interface VolumeStatusMsg {
  volume: string;
  size: U64In;
  generation: U64In;
  durable_seq: U64In;
  durable_time_ns: U64In;
  window_oldest_ns: U64In;
  window_newest_ns: U64In;
  journal_bytes: U64In;
  writer_connected: boolean;
  detail_json: string;
}
export interface ListVolumesResponseMsg { volumes: VolumeStatusMsg[] }

export interface GetPlanRequestMsg { volume: string; token: string; from: string; to: string; rpo: string; link: string; outage: string; bandwidth: string; basis: string }
export interface PlanResponseMsg { plan_json: string }

export interface RegisterVolumeRequestMsg { admin_token: string; volume: string; size: U64In; token: string }
export interface RegisterVolumeResponseMsg { volume: VolumeStatusMsg; created: boolean; token_rotated: boolean }
export interface DeleteVolumeRequestMsg { admin_token: string; volume: string }
export interface DeleteVolumeResponseMsg { deleted: boolean }

// ---- CSI SnapshotMetadata ----
export type BlockMetadataType = 'UNKNOWN' | 'FIXED_LENGTH' | 'VARIABLE_LENGTH';
export interface BlockMetadataMsg { byte_offset: U64In; size_bytes: U64In }
export interface GetMetadataAllocatedRequestMsg { snapshot_id: string; starting_offset: U64; max_results: number; secrets: Record<string, string> }
export interface GetMetadataDeltaRequestMsg {
  base_snapshot_id: string;
  target_snapshot_id: string;
  starting_offset: U64;
  max_results: number;
  secrets: Record<string, string>;
}
export interface GetMetadataResponseMsg {
  block_metadata_type: BlockMetadataType;
  volume_capacity_bytes: U64In;
  block_metadata: BlockMetadataMsg[];
}
