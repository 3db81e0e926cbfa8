import { invalidArgument } from './csi-error.js';
import type { VolumeCapability } from './messages.js';

/**
 * What a volume of the local model can be: one node holds its sparse file and its one
 * data path, so only single-node access modes make sense. MULTI_NODE_* would need a
 * shared backing (the wrapped model over a shared class), which this driver does not offer.
 */
const SINGLE_NODE_MODES = new Set(['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER']);
/** Filesystems NodeStage can make (mkfs.<type>) and mount; others are refused up front. */
export const SUPPORTED_FS = ['ext4', 'ext3', 'ext2', 'xfs'] as const;
export const DEFAULT_FS = 'ext4';

export type AccessType = 'mount' | 'block';

export function accessTypeOf(cap: VolumeCapability): AccessType | undefined {
  if (cap.access_type === 'block' || (cap.block && !cap.mount)) return 'block';
  if (cap.access_type === 'mount' || cap.mount) return 'mount';
  return undefined;
}

/** Why a capability cannot be had, or undefined when it can. */
export function unsupportedReason(cap: VolumeCapability): string | undefined {
  const type = accessTypeOf(cap);
  if (type === undefined) return 'a volume capability needs an access type: block or mount';
  const mode = cap.access_mode?.mode;
  if (!mode || mode === 'UNKNOWN') return 'a volume capability needs an access mode (e.g. SINGLE_NODE_WRITER / ReadWriteOnce)';
  if (!SINGLE_NODE_MODES.has(mode)) {
    return `access mode ${mode} is not supported: a Rewind volume lives on one node; use ReadWriteOnce, ReadWriteOncePod or ReadOnly on one node`;
  }
  if (type === 'mount') {
    const fs = cap.mount?.fs_type || DEFAULT_FS;
    if (!(SUPPORTED_FS as readonly string[]).includes(fs)) return `fsType "${fs}" is not supported; use one of ${SUPPORTED_FS.join(', ')}`;
  }
  return undefined;
}

export function requireCapability(cap: VolumeCapability | null | undefined, what: string): VolumeCapability {
  if (!cap) throw invalidArgument(`${what}: volume_capability is required`);
  const why = unsupportedReason(cap);
  if (why) throw invalidArgument(`${what}: ${why}`);
  return cap;
}

export function requireCapabilities(caps: VolumeCapability[] | undefined, what: string): VolumeCapability[] {
  if (!caps || caps.length === 0) throw invalidArgument(`${what}: volume_capabilities must name at least one capability`);
  for (const c of caps) requireCapability(c, what);
  return caps;
}

export function fsTypeOf(cap: VolumeCapability): string {
  return cap.mount?.fs_type || DEFAULT_FS;
}
