import { createHash } from 'node:crypto';

/**
 * The volume id is also a directory name on the node and the volume's name on the
 * collector. The external-provisioner names volumes `pvc-<uid>`, which the controller
 * (collectorVolumeName) registers under the same name, so such a name is kept as is;
 * anything that is not a safe name becomes a digest of it.
 */
const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function volumeIdFor(name: string): string {
  return SAFE.test(name) ? name : `v-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

export function isSafeVolumeId(id: string): boolean {
  return SAFE.test(id);
}
