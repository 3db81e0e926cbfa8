/**
 * VolumeRestore: the state of a volume at a RestorePoint or an instant, written into a new
 * PVC or back into the volume itself (only the changed blocks). Fails closed: a restore
 * that cannot complete never leaves a volume that looks ready.
 */
import { customResourceDefinition, type KindDefinition, type PrinterColumn } from './crd.js';
import { boolean, dateTime, dns1123Name, enumOf, immutable, int64, object, quantity, rule, string } from './schema.js';
import { conditionsSchema, observedGenerationSchema, type Condition, type RewindObject } from './shared.js';

export const VOLUME_RESTORE_PHASES = ['Pending', 'Running', 'Completed', 'Failed'] as const;
export type VolumeRestorePhase = (typeof VOLUME_RESTORE_PHASES)[number];

export interface VolumeRestoreSpec {
  /** The PVC whose history is read. */
  volume: string;
  /** Exactly one of restorePoint, at. */
  source: { restorePoint?: string; at?: string };
  /** Exactly one of newPVC, inPlace: true. */
  target: {
    newPVC?: { name: string; storageClassName?: string; size?: string | number };
    inPlace?: boolean;
  };
}

export interface VolumeRestoreStatus {
  phase?: VolumeRestorePhase;
  bytesDone?: number;
  bytesTotal?: number;
  startTime?: string;
  completionTime?: string;
  resolvedTime?: string;
  resolvedSeq?: number;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type VolumeRestore = RewindObject<'VolumeRestore', VolumeRestoreSpec, VolumeRestoreStatus>;

export const VR_CONDITION_COMPLETE = 'Complete';
export const VR_CONDITION_FAILED = 'Failed';

export const VrReasons = {
  Copying: 'Copying',
  Reverting: 'Reverting',
  Completed: 'Completed',
  VolumeInUse: 'VolumeInUse',
  RestorePointNotReady: 'RestorePointNotReady',
  OutOfWindow: 'OutOfWindow',
  CollectorUnreachable: 'CollectorUnreachable',
} as const;

export const VOLUME_RESTORE_PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: 'Volume', type: 'string', jsonPath: '.spec.volume', description: 'The PVC whose history is read.' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
  { name: 'Done', type: 'integer', jsonPath: '.status.bytesDone', description: 'Bytes written so far.' },
  { name: 'Total', type: 'integer', jsonPath: '.status.bytesTotal', description: 'Bytes to write.' },
  { name: 'Time', type: 'string', jsonPath: '.status.resolvedTime', description: 'The instant restored.', priority: 1 },
  { name: 'Seq', type: 'integer', jsonPath: '.status.resolvedSeq', priority: 1 },
];

/** vr is too common a guess (VolumeReplication, VirtualRouter); rwvr is ours alone. */
export const VOLUME_RESTORE_SHORT_NAMES = ['rwvr'] as const;

export const volumeRestoreDefinition: KindDefinition = {
  kind: 'VolumeRestore',
  plural: 'volumerestores',
  shortNames: VOLUME_RESTORE_SHORT_NAMES,
  description: 'Restore a protected volume as of a RestorePoint or an instant, into a new PVC or in place.',
  printerColumns: VOLUME_RESTORE_PRINTER_COLUMNS,
  spec: object(
    {
      volume: dns1123Name('The PVC whose history is read.'),
      source: object(
        {
          restorePoint: dns1123Name('Name of a RestorePoint of the volume.'),
          at: dateTime('An instant (RFC 3339) inside the restorable window.'),
        },
        { 'x-kubernetes-validations': [rule('has(self.restorePoint) != has(self.at)', 'set exactly one of source.restorePoint or source.at')] },
      ),
      target: object(
        {
          newPVC: object(
            {
              name: dns1123Name('Name of the PVC to create.'),
              storageClassName: string({ maxLength: 253, description: 'A Rewind StorageClass; absent: the default one.' }),
              size: quantity('Size of the new PVC; absent: the size of the volume.'),
            },
            { required: ['name'] },
          ),
          inPlace: boolean({ description: 'Revert the volume itself (only changed blocks) while nothing has it attached.' }),
        },
        {
          'x-kubernetes-validations': [
            rule('has(self.newPVC) != (has(self.inPlace) && self.inPlace)', 'set exactly one of target.newPVC or target.inPlace: true'),
          ],
        },
      ),
    },
    { required: ['volume', 'source', 'target'], 'x-kubernetes-validations': [immutable('spec')] },
  ),
  status: object({
    phase: enumOf(VOLUME_RESTORE_PHASES),
    bytesDone: int64({ minimum: 0 }),
    bytesTotal: int64({ minimum: 0 }),
    startTime: dateTime('When the copy started.'),
    completionTime: dateTime('When the restore completed or failed.'),
    resolvedTime: dateTime('The instant restored.'),
    resolvedSeq: int64({ minimum: 0, description: 'The last journal seq included.' }),
    conditions: conditionsSchema,
    observedGeneration: observedGenerationSchema,
  }),
};

export const volumeRestoreCrd = customResourceDefinition(volumeRestoreDefinition);
