/**
 * A small checker of a value against one of our structural schemas: the OpenAPI part the
 * API server applies before CEL (types, required, enum, pattern, bounds, unknown fields).
 * CEL rules are not evaluated here; the control-plane tests run them on a real API server.
 * Used by unit tests and by the plugins to refuse, without a round trip, what the server would.
 */
import type { JSONSchema } from './schema.js';

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

export function schemaErrors(value: unknown, schema: JSONSchema, at = ''): string[] {
  const where = at || '<root>';
  if (schema['x-kubernetes-int-or-string']) {
    if (typeof value === 'number' && Number.isInteger(value)) return [];
    if (typeof value !== 'string') return [`${where}: must be an integer or a string`];
    return schema.pattern && !new RegExp(schema.pattern).test(value) ? [`${where}: "${value}" does not match ${schema.pattern}`] : [];
  }
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: must be an object`];
      const obj = value as Record<string, unknown>;
      const errs = (schema.required ?? []).filter((k) => obj[k] === undefined).map((k) => `${at}.${k}: required`);
      for (const [k, v] of Object.entries(obj)) {
        const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
        if (sub) errs.push(...schemaErrors(v, sub, `${at}.${k}`));
        // An object schema without properties (metadata) is the API server's to check; any
        // other unknown field would be pruned silently, so it is named here.
        else if (schema.properties) errs.push(`${at}.${k}: unknown field`);
      }
      return errs;
    }
    case 'array':
      if (!Array.isArray(value)) return [`${where}: must be an array`];
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return [`${where}: at most ${schema.maxItems} items`];
      return value.flatMap((v, i) => schemaErrors(v, schema.items!, `${at}[${i}]`));
    case 'string': {
      if (typeof value !== 'string') return [`${where}: must be a string`];
      const errs: string[] = [];
      if (schema.enum && !schema.enum.includes(value)) errs.push(`${where}: "${value}" is not one of ${schema.enum.join(', ')}`);
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) errs.push(`${where}: "${value}" does not match ${schema.pattern}`);
      if (schema.minLength !== undefined && value.length < schema.minLength) errs.push(`${where}: shorter than ${schema.minLength}`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) errs.push(`${where}: longer than ${schema.maxLength}`);
      if (schema.format === 'date-time' && !DATE_TIME.test(value)) errs.push(`${where}: "${value}" is not an RFC 3339 date-time`);
      return errs;
    }
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) return [`${where}: must be ${schema.type === 'integer' ? 'an integer' : 'a number'}`];
      if (schema.minimum !== undefined && value < schema.minimum) return [`${where}: must be at least ${schema.minimum}`];
      if (schema.maximum !== undefined && value > schema.maximum) return [`${where}: must be at most ${schema.maximum}`];
      return [];
    }
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${where}: must be a boolean`];
    default:
      return [`${where}: schema without a type`];
  }
}
