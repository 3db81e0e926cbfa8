/**
 * RestorePoint: a named instant of one volume, or of a consistency group of PVCs picked by
 * a label selector. Becomes a mark in the collector's journal, ordered with the writes.
 */
import type { V1LabelSelector } from '@kubernetes/client-node';
import { customResourceDefinition, type KindDefinition, type PrinterColumn } from './crd.js';
import { array, dateTime, dns1123Name, enumOf, immutable, int64, object, rule, string, stringMap, type JSONSchema } from './schema.js';
import { conditionsSchema, observedGenerationSchema, type Condition, type RewindObject } from './shared.js';

export const RESTORE_POINT_PHASES = ['Pending', 'Ready', 'Failed'] as const;
export type RestorePointPhase = (typeof RESTORE_POINT_PHASES)[number];

export interface RestorePointSpec {
  /** One PVC (exactly one of volume, selector). */
  volume?: string;
  /** PVCs of a consistency group: one barrier across all of them. */
  selector?: V1LabelSelector;
  /** RFC 3339; absent = when the controller takes it. Must not be in the future. */
  at?: string;
}

export interface RestorePointStatus {
  phase?: RestorePointPhase;
  /** The instant the mark stands for. */
  time?: string;
  seq?: number;
  changedBytesSincePrevious?: number;
  /** The mark's id on the collector (keyed by this object's UID). */
  markId?: string;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type RestorePoint = RewindObject<'RestorePoint', RestorePointSpec, RestorePointStatus>;

export const RP_CONDITION_READY = 'Ready';

export const RpReasons = {
  Resolved: 'Resolved',
  AtInFuture: 'AtInFuture',
  OutOfWindow: 'OutOfWindow',
  VolumeNotProtected: 'VolumeNotProtected',
  CollectorUnreachable: 'CollectorUnreachable',
} as const;

export const RESTORE_POINT_PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: 'Volume', type: 'string', jsonPath: '.spec.volume', description: 'The PVC (empty for a group point).' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
  // A string, not a date: the instant itself is what one picks a point by, not its age.
  { name: 'Time', type: 'string', jsonPath: '.status.time', description: 'The resolved instant.' },
  { name: 'Seq', type: 'integer', jsonPath: '.status.seq', description: 'Journal sequence number of the mark.' },
  { name: 'Changed', type: 'integer', jsonPath: '.status.changedBytesSincePrevious', description: 'Bytes changed since the previous point.' },
  { name: 'Mark', type: 'string', jsonPath: '.status.markId', priority: 1 },
];

/** Kasten's apps.kio.kasten.io RestorePoint shares our plural; rwrp is unambiguous. */
export const RESTORE_POINT_SHORT_NAMES = ['rwrp'] as const;

/** metav1.LabelSelector. */
export const labelSelectorSchema: JSONSchema = object(
  {
    matchLabels: stringMap({ description: 'Labels a PVC must carry.' }),
    matchExpressions: array(
      object(
        {
          key: string({ minLength: 1, maxLength: 317 }),
          operator: enumOf(['In', 'NotIn', 'Exists', 'DoesNotExist']),
          values: array(string({ maxLength: 63 }), { maxItems: 64 }),
        },
        { required: ['key', 'operator'] },
      ),
      { maxItems: 32 },
    ),
  },
  { description: 'Label selector of the PVCs in a consistency group.', 'x-kubernetes-map-type': 'atomic' },
);

export const restorePointDefinition: KindDefinition = {
  kind: 'RestorePoint',
  plural: 'restorepoints',
  shortNames: RESTORE_POINT_SHORT_NAMES,
  description: 'A named instant of a protected volume (or of a group of them) that outlives the any-point window.',
  printerColumns: RESTORE_POINT_PRINTER_COLUMNS,
  spec: object(
    {
      volume: dns1123Name('The PVC (its ProtectedVolume) this point belongs to. Exactly one of volume, selector.'),
      selector: labelSelectorSchema,
      at: dateTime('The instant (RFC 3339), not in the future. Absent: now.'),
    },
    {
      'x-kubernetes-validations': [
        rule('has(self.volume) != has(self.selector)', 'set exactly one of spec.volume (one PVC) or spec.selector (a group of PVCs)'),
        immutable('spec'),
      ],
    },
  ),
  status: object({
    phase: enumOf(RESTORE_POINT_PHASES),
    time: dateTime('The resolved instant.'),
    seq: int64({ minimum: 0, description: 'Journal sequence number of the mark.' }),
    changedBytesSincePrevious: int64({ minimum: 0, description: "Bytes changed since the volume's previous point." }),
    markId: string({ maxLength: 253, description: 'Id of the mark on the collector.' }),
    conditions: conditionsSchema,
    observedGeneration: observedGenerationSchema,
  }),
};

export const restorePointCrd = customResourceDefinition(restorePointDefinition);
