/**
 * What the three kinds share: group/version, the standard condition shape, and the
 * duration and time forms their fields use.
 */
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { array, dateTime, enumOf, int64, object, rule, string, type JSONSchema } from './schema.js';

export const GROUP = 'cdp.rewind.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
/** `kubectl get rewind` lists every Rewind object; it also tells ours apart from Kasten's RestorePoint. */
export const CATEGORY = 'rewind';

/** The fields every object of ours has; metadata is the client-node model. */
export interface RewindObject<K extends string, Spec, Status> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: V1ObjectMeta;
  spec: Spec;
  status?: Status;
}

// ---------------------------------------------------------------------------------------
// Conditions: metav1.Condition, field for field, so `kubectl wait --for=condition=X` and
// every tool that reads conditions understands ours.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  /** PascalCase, machine-readable: why the status is what it is. */
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export const CONDITION_REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';

/** metav1.Condition's own validation (its kubebuilder markers), as a list keyed by type. */
export const conditionsSchema: JSONSchema = array(
  object(
    {
      type: string({
        description: 'Condition type in CamelCase (Ready, Protected, Degraded, ...).',
        minLength: 1,
        maxLength: 316,
        pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
      }),
      status: enumOf(['True', 'False', 'Unknown'], { description: 'True, False or Unknown.' }),
      reason: string({ description: 'PascalCase reason for the last transition.', minLength: 1, maxLength: 1024, pattern: CONDITION_REASON_PATTERN }),
      message: string({ description: 'Human-readable detail: what is wrong and what to do.', maxLength: 32768 }),
      lastTransitionTime: dateTime('When status last changed.'),
      observedGeneration: int64({ description: 'metadata.generation the condition was set for.', minimum: 0 }),
    },
    { required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'] },
  ),
  {
    description: 'Standard conditions (metav1.Condition), one per type.',
    maxItems: 16,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  },
);

export const observedGenerationSchema: JSONSchema = int64({ description: 'metadata.generation the controller last acted on.', minimum: 0 });

// ---------------------------------------------------------------------------------------
// Durations: Go's time.ParseDuration forms ("24h", "1h30m", "90s"), because that is what
// CEL's duration() reads on the API server. No sign: a negative retention is refused by the
// pattern before any CEL runs; "0s" passes the pattern and is refused by the CEL rule.

export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$';

/** A positive duration string with its default. */
export function positiveDuration(description: string, dflt: string): JSONSchema {
  return string({
    description: `${description} A Go duration: 90s, 30m, 24h, 1h30m.`,
    default: dflt,
    maxLength: 32,
    pattern: DURATION_PATTERN,
    'x-kubernetes-validations': [rule("duration(self) > duration('0s')", 'must be a duration greater than zero, such as 24h')],
  });
}

const DURATION_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

/** A duration string as the schema admits it → milliseconds (the controller's retention maths). */
export function parseApiDuration(text: string): number {
  if (!new RegExp(DURATION_PATTERN).test(text)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `cannot read "${text}" as a duration; use forms like 90s, 30m, 24h, 1h30m`);
  }
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/g)) ms += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
  return ms;
}

// ---------------------------------------------------------------------------------------
// Times: the journal counts ns since the epoch; the API carries RFC 3339. Fractions are
// kept to the ns (trailing zeros dropped) so a RestorePoint names the exact instant.

export function formatRfc3339(ns: bigint): string {
  if (ns < 0n) throw new RewindError(ErrorCodes.OUT_OF_RANGE, `instant ${ns} ns is before 1970; Rewind's clock never reads that`);
  const whole = new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${whole}${frac ? `.${frac}` : ''}Z`;
}
