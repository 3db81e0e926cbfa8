/**
 * OpenAPI v3 schemas in the wire form the API server reads (`enum`, `default`,
 * `x-kubernetes-validations`), with small builders so each kind's file reads like its YAML.
 *
 * Why not client-node's V1JSONSchemaProps: it spells the keys `_enum`, `_default`,
 * `x_kubernetes_validations`, and types `items` / `additionalProperties` as `any`, so a schema
 * written in it is half model, half wire form, and its serializer drops every wire key it
 * does not know (dumpYaml of a typed CRD loses `enum`). One form, the wire one, everywhere.
 */

/** One `x-kubernetes-validations` entry (a CEL rule). */
export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  /** FieldValueInvalid | FieldValueForbidden | FieldValueRequired | FieldValueDuplicate */
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

export interface JSONSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  description?: string;
  properties?: Record<string, JSONSchema>;
  required?: string[];
  additionalProperties?: JSONSchema | boolean;
  items?: JSONSchema;
  anyOf?: JSONSchema[];
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  maxProperties?: number;
  nullable?: boolean;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

type Extra = Omit<JSONSchema, 'type' | 'properties' | 'items'>;

export function object(properties: Record<string, JSONSchema>, extra: Extra = {}): JSONSchema {
  return { type: 'object', ...extra, properties };
}

/** A string-to-string map (labels, matchLabels). */
export function stringMap(extra: Extra = {}): JSONSchema {
  return { type: 'object', ...extra, additionalProperties: { type: 'string' } };
}

export function array(items: JSONSchema, extra: Extra = {}): JSONSchema {
  return { type: 'array', ...extra, items };
}

export function string(extra: Extra = {}): JSONSchema {
  return { type: 'string', ...extra };
}

export function enumOf(values: readonly string[], extra: Extra = {}): JSONSchema {
  return { type: 'string', ...extra, enum: [...values] };
}

export function boolean(extra: Extra = {}): JSONSchema {
  return { type: 'boolean', ...extra };
}

/** Counters, sizes and seqs: int64 on the wire (JS numbers are exact up to 2^53). */
export function int64(extra: Extra = {}): JSONSchema {
  return { type: 'integer', format: 'int64', ...extra };
}

export function int32(extra: Extra = {}): JSONSchema {
  return { type: 'integer', format: 'int32', ...extra };
}

export function number(extra: Extra = {}): JSONSchema {
  return { type: 'number', ...extra };
}

/** RFC 3339; the API server checks the format. maxLength bounds the cost of CEL on it. */
export function dateTime(description: string): JSONSchema {
  return { type: 'string', format: 'date-time', maxLength: 64, description };
}

/**
 * A Kubernetes object name: a DNS-1123 subdomain (what PVCs and custom resources use).
 * The same rule as `isDns1123Subdomain` below, so a CLI refuses what the API server would.
 */
export function dns1123Name(description: string, extra: Extra = {}): JSONSchema {
  return { type: 'string', minLength: 1, maxLength: DNS1123_SUBDOMAIN_MAX, pattern: DNS1123_SUBDOMAIN_PATTERN, description, ...extra };
}

/** A resource.Quantity ("10Gi", 1073741824): int-or-string, the way core types spell it. */
export function quantity(description: string): JSONSchema {
  return {
    description,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
    'x-kubernetes-int-or-string': true,
  };
}

export function rule(celRule: string, message: string, extra: Omit<ValidationRule, 'rule' | 'message'> = {}): ValidationRule {
  return { rule: celRule, message, ...extra };
}

/** On a field or object: once set, it never changes (CEL transition rule). */
export function immutable(what: string): ValidationRule {
  return rule('self == oldSelf', `${what} is immutable; delete and recreate the object to change it`);
}

export const DNS1123_SUBDOMAIN_MAX = 253;
export const DNS1123_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

export function isDns1123Subdomain(s: string): boolean {
  return s.length > 0 && s.length <= DNS1123_SUBDOMAIN_MAX && new RegExp(DNS1123_SUBDOMAIN_PATTERN).test(s);
}
