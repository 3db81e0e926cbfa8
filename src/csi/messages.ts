/**
 * Hand-written shapes of the csi.proto messages this driver reads and writes, as
 * proto-loader presents them (keepCase, enums as names, int64 as decimal strings,
 * oneofs named by a string field). Only the fields the driver uses.
 */
export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type?: string; mount_flags?: string[]; volume_mount_group?: string } | null;
  access_type?: 'block' | 'mount';
  access_mode?: { mode?: string } | null;
}

export interface Topology {
  segments: Record<string, string>;
}

export interface CapacityRange {
  required_bytes?: string;
  limit_bytes?: string;
}

export interface CsiVolume {
  volume_id: string;
  capacity_bytes: string;
  volume_context: Record<string, string>;
  accessible_topology: Topology[];
  content_source?: unknown;
}

export type Secrets = Record<string, string>;
