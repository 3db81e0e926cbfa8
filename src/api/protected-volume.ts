/**
 * ProtectedVolume: one PVC whose every write is journaled to a collector.
 * DESIGN.md §3 "Durability modes" and "Kubernetes API".
 */
import { customResourceDefinition, type KindDefinition, type PrinterColumn } from './crd.js';
import { boolean, dns1123Name, enumOf, immutable, int32, int64, number, object, rule, string, dateTime } from './schema.js';
import { conditionsSchema, observedGenerationSchema, positiveDuration, type Condition, type RewindObject } from './shared.js';

export const DURABILITY_MODES = ['async', 'flush-sync', 'sync'] as const;
export type DurabilityMode = (typeof DURABILITY_MODES)[number];
export const DEFAULT_DURABILITY: DurabilityMode = 'flush-sync';

export const FULL_POLICIES = ['block', 'dirty-bitmap'] as const;
export type FullPolicy = (typeof FULL_POLICIES)[number];

export const DEFAULT_POINT_IN_TIME_RETENTION = '24h';
export const DEFAULT_MARKS_RETENTION = '168h';

export interface ProtectedVolumeSpec {
  /** The PVC in the same namespace. Immutable: its history belongs to that volume. */
  pvcName: string;
  durability?: DurabilityMode;
  retention?: {
    /** Any instant is restorable for this long. */
    pointInTime?: string;
    /** Marks (RestorePoints) outlive the any-point window for this long; ≥ pointInTime. */
    marks?: string;
  };
  /** Absent: the controller picks the collector. */
  collector?: { address?: string };
  shipping?: {
    /** 0 or absent: no cap. */
    bandwidthBytesPerSecond?: number;
    /** Drop blocks overwritten inside one shipping batch: less bandwidth, coarser history. */
    coalesce?: boolean;
    /** When the node's spool is full: block writers, or track dirty blocks and resync later. */
    fullPolicy?: FullPolicy;
  };
  /** Lag above this many seconds sets Degraded/LagOverTarget and status.rpoMet=false. */
  rpoTargetSeconds?: number;
}

export interface ProtectedVolumeStatus {
  conditions?: Condition[];
  observedGeneration?: number;
  protectedSince?: string;
  latestDurableTime?: string;
  lagSeconds?: number;
  restorableWindow?: { from?: string; to?: string };
  journalBytes?: number;
  /** The mode in force on the node (can trail spec.durability until the node picks it up). */
  durability?: DurabilityMode;
  rpoMet?: boolean;
  /**
   * The planner's answer for the RPO target over the retained history (docs/planner.md):
   * the least shipping bandwidth that keeps the lag within it, and whether the volume's
   * bandwidth cap (none: unlimited) is at least that.
   */
  recommendedBandwidthBytesPerSecond?: number;
  linkMeetsRpo?: boolean;
  /** The volume's name on the collector. */
  collectorVolume?: string;
  /** The Secret holding the per-volume token the node side streams with. */
  tokenSecretName?: string;
  durableSeq?: number;
}

export type ProtectedVolume = RewindObject<'ProtectedVolume', ProtectedVolumeSpec, ProtectedVolumeStatus>;

/** Condition types. */
export const PV_CONDITION_READY = 'Ready';
export const PV_CONDITION_PROTECTED = 'Protected';
export const PV_CONDITION_DEGRADED = 'Degraded';

/** Reasons (PascalCase); the controller may add more. */
export const PvReasons = {
  Streaming: 'Streaming',
  WaitingForWriter: 'WaitingForWriter',
  CollectorUnreachable: 'CollectorUnreachable',
  LagOverTarget: 'LagOverTarget',
  PvcNotFound: 'PvcNotFound',
  SpoolFull: 'SpoolFull',
  Resyncing: 'Resyncing',
  AsExpected: 'AsExpected',
} as const;

export const PROTECTED_VOLUME_PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: 'PVC', type: 'string', jsonPath: '.spec.pvcName', description: 'The protected PVC.' },
  { name: 'Mode', type: 'string', jsonPath: '.status.durability', description: 'Durability mode in force.' },
  { name: 'Protected', type: 'string', jsonPath: '.status.conditions[?(@.type=="Protected")].status' },
  { name: 'Lag', type: 'number', jsonPath: '.status.lagSeconds', description: 'Seconds the collector trails the volume.' },
  { name: 'Journal', type: 'integer', jsonPath: '.status.journalBytes', description: 'Bytes of history on the collector.' },
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', priority: 1 },
  { name: 'RPO-Met', type: 'boolean', jsonPath: '.status.rpoMet', priority: 1 },
  { name: 'Latest', type: 'date', jsonPath: '.status.latestDurableTime', description: 'Age of the newest durable write.', priority: 1 },
  { name: 'From', type: 'string', jsonPath: '.status.restorableWindow.from', description: 'Oldest restorable instant.', priority: 1 },
];

/** pv is PersistentVolume and Kasten/others use the obvious ones; rw… is ours alone (see api doc). */
export const PROTECTED_VOLUME_SHORT_NAMES = ['rwpv'] as const;

export const protectedVolumeDefinition: KindDefinition = {
  kind: 'ProtectedVolume',
  plural: 'protectedvolumes',
  shortNames: PROTECTED_VOLUME_SHORT_NAMES,
  description: 'A PVC whose every write is journaled to a Rewind collector, restorable to any instant in its retention window.',
  printerColumns: PROTECTED_VOLUME_PRINTER_COLUMNS,
  spec: object(
    {
      pvcName: dns1123Name('Name of the PersistentVolumeClaim in this namespace. Immutable.', { 'x-kubernetes-validations': [immutable('pvcName')] }),
      durability: enumOf(DURABILITY_MODES, {
        default: DEFAULT_DURABILITY,
        description: 'async: acknowledged once spooled locally; flush-sync: FLUSH/FUA wait for the collector; sync: every write waits.',
      }),
      retention: object(
        {
          pointInTime: positiveDuration('How long any instant stays restorable.', DEFAULT_POINT_IN_TIME_RETENTION),
          marks: positiveDuration('How long RestorePoints stay restorable (at least pointInTime).', DEFAULT_MARKS_RETENTION),
        },
        {
          default: {},
          'x-kubernetes-validations': [
            rule('!has(self.marks) || !has(self.pointInTime) || duration(self.marks) >= duration(self.pointInTime)', 'retention.marks must be at least retention.pointInTime'),
          ],
        },
      ),
      collector: object(
        { address: string({ description: 'host:port of the collector gRPC service. Absent: chosen by the controller.', maxLength: 512 }) },
        { description: 'Where the history is kept.' },
      ),
      shipping: object(
        {
          bandwidthBytesPerSecond: int64({ minimum: 0, default: 0, description: 'Cap on shipping bytes per second; 0 means no cap.' }),
          coalesce: boolean({ default: false, description: 'Drop blocks overwritten within one shipping batch (less bandwidth, coarser history).' }),
          fullPolicy: enumOf(FULL_POLICIES, { default: 'block', description: 'When the node spool is full: block writers, or track dirty blocks and resync.' }),
        },
        { default: {} },
      ),
      rpoTargetSeconds: int32({ minimum: 0, description: 'Lag above this many seconds is reported as Degraded (LagOverTarget).' }),
    },
    { required: ['pvcName'] },
  ),
  status: object({
    conditions: conditionsSchema,
    observedGeneration: observedGenerationSchema,
    protectedSince: dateTime('When the first write reached the collector.'),
    latestDurableTime: dateTime('Time of the newest write the collector holds durably.'),
    lagSeconds: number({ minimum: 0, description: 'How far the collector trails the volume.' }),
    restorableWindow: object({ from: dateTime('Oldest restorable instant.'), to: dateTime('Newest restorable instant.') }),
    journalBytes: int64({ minimum: 0, description: 'Bytes of journal and checkpoints held for this volume.' }),
    durability: enumOf(DURABILITY_MODES, { description: 'Durability mode in force on the node.' }),
    rpoMet: boolean({ description: 'Whether lag is within rpoTargetSeconds.' }),
    recommendedBandwidthBytesPerSecond: int64({ minimum: 0, description: "The planner's least shipping bandwidth that keeps the lag within rpoTargetSeconds over the retained history." }),
    linkMeetsRpo: boolean({ description: 'Whether the shipping bandwidth cap (none: unlimited) is at least the recommended bandwidth.' }),
    collectorVolume: string({ description: "The volume's name on the collector.", maxLength: 512 }),
    tokenSecretName: string({ description: 'Secret with the per-volume token the node streams with.', maxLength: 253 }),
    durableSeq: int64({ minimum: 0, description: 'Highest sequence number the collector holds durably.' }),
  }),
};

export const protectedVolumeCrd = customResourceDefinition(protectedVolumeDefinition);
