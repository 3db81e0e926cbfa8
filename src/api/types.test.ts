import { describe, expect, it } from 'vitest';
import { schemaErrors } from './schema-check.js';
import {
  API_VERSION,
  CRDS,
  formatRfc3339,
  parseApiDuration,
  type ProtectedVolume,
  type RestorePoint,
  type VolumeRestore,
  isDns1123Subdomain,
} from './index.js';

const rootOf = (kind: string) => CRDS.find((c) => c.spec.names.kind === kind)!.spec.versions[0]!.schema.openAPIV3Schema;

const pv: ProtectedVolume = {
  apiVersion: API_VERSION,
  kind: 'ProtectedVolume',
  metadata: { name: 'data', namespace: 'default' },
  spec: { pvcName: 'data', durability: 'sync', retention: { pointInTime: '1h30m', marks: '168h' }, shipping: { bandwidthBytesPerSecond: 0, coalesce: true, fullPolicy: 'dirty-bitmap' }, rpoTargetSeconds: 5 },
  status: {
    conditions: [{ type: 'Protected', status: 'True', reason: 'Streaming', message: 'every write reaches the collector', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 }],
    observedGeneration: 1,
    protectedSince: '2026-01-01T00:00:00Z',
    latestDurableTime: '2026-01-01T00:00:05.123456789Z',
    lagSeconds: 0.25,
    restorableWindow: { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:00:05Z' },
    journalBytes: 4096,
    durability: 'sync',
    rpoMet: true,
    collectorVolume: 'default-data',
    tokenSecretName: 'data-rewind-token',
    durableSeq: 42,
  },
};

const rp: RestorePoint = {
  apiVersion: API_VERSION,
  kind: 'RestorePoint',
  metadata: { name: 'before' },
  spec: { volume: 'data', at: '2026-01-01T00:00:00Z' },
  status: { phase: 'Ready', time: '2026-01-01T00:00:00Z', seq: 7, changedBytesSincePrevious: 0, markId: 'uid', conditions: [], observedGeneration: 1 },
};

const vr: VolumeRestore = {
  apiVersion: API_VERSION,
  kind: 'VolumeRestore',
  metadata: { name: 'r' },
  spec: { volume: 'data', source: { restorePoint: 'before' }, target: { newPVC: { name: 'data-copy', storageClassName: 'rewind', size: '10Gi' } } },
  status: { phase: 'Running', bytesDone: 1, bytesTotal: 2, startTime: '2026-01-01T00:00:00Z', resolvedTime: '2026-01-01T00:00:00Z', resolvedSeq: 7 },
};

describe('the TypeScript types and the schemas describe the same objects', () => {
  it('a fully filled object of each kind passes its schema', () => {
    expect(schemaErrors(pv, rootOf('ProtectedVolume'))).toEqual([]);
    expect(schemaErrors(rp, rootOf('RestorePoint'))).toEqual([]);
    expect(schemaErrors(vr, rootOf('VolumeRestore'))).toEqual([]);
    expect(schemaErrors({ ...vr, spec: { ...vr.spec, target: { newPVC: { name: 'x', size: 1073741824 } } } }, rootOf('VolumeRestore'))).toEqual([]);
  });

  it('the OpenAPI part refuses negative retention, an unknown mode, a bad PVC name, a missing spec, unknown fields', () => {
    const bad = (spec: unknown) => schemaErrors({ ...pv, spec }, rootOf('ProtectedVolume'));
    expect(bad({ pvcName: 'data', retention: { pointInTime: '-1h' } }).join()).toMatch(/pointInTime.*does not match/);
    expect(bad({ pvcName: 'data', retention: { marks: '7d' } }).join()).toMatch(/marks.*does not match/);
    expect(bad({ pvcName: 'data', durability: 'eventually' }).join()).toMatch(/not one of async, flush-sync, sync/);
    expect(bad({ pvcName: 'Data_1' }).join()).toMatch(/pvcName.*does not match/);
    expect(bad({ pvcName: 'data', shipping: { bandwidthBytesPerSecond: -1 } }).join()).toMatch(/at least 0/);
    expect(bad({ pvcName: 'data', durabilty: 'sync' }).join()).toMatch(/durabilty: unknown field/);
    expect(bad({}).join()).toMatch(/pvcName: required/);
    expect(schemaErrors({ apiVersion: API_VERSION, kind: 'RestorePoint', metadata: {} }, rootOf('RestorePoint'))).toEqual(['.spec: required']);
    expect(schemaErrors({ ...rp, spec: { volume: 'data', at: 'yesterday' } }, rootOf('RestorePoint')).join()).toMatch(/RFC 3339/);
  });
});

describe('durations and times', () => {
  it('reads the Go duration forms the schema admits, and refuses the rest', () => {
    expect(parseApiDuration('24h')).toBe(86_400_000);
    expect(parseApiDuration('1h30m')).toBe(5_400_000);
    expect(parseApiDuration('1.5s')).toBe(1500);
    expect(parseApiDuration('250ms')).toBe(250);
    for (const s of ['-1h', '7d', '', 'h', '1 h']) expect(() => parseApiDuration(s), s).toThrow(/as a duration/);
  });

  it('writes RFC 3339 with the fraction kept to the ns and trailing zeros dropped', () => {
    expect(formatRfc3339(0n)).toBe('1970-01-01T00:00:00Z');
    expect(formatRfc3339(1_767_225_600_000_000_000n)).toBe('2026-01-01T00:00:00Z');
    expect(formatRfc3339(1_767_225_600_500_000_000n)).toBe('2026-01-01T00:00:00.5Z');
    expect(formatRfc3339(1_767_225_600_000_000_001n)).toBe('2026-01-01T00:00:00.000000001Z');
    expect(() => formatRfc3339(-1n)).toThrow(/before 1970/);
  });

  it('names are DNS-1123 subdomains, as the API server checks them', () => {
    for (const ok of ['data', 'a', 'db-0', 'a.b-c']) expect(isDns1123Subdomain(ok), ok).toBe(true);
    for (const no of ['', 'Data', '-a', 'a-', 'a_b', 'a..b', 'x'.repeat(254)]) expect(isDns1123Subdomain(no), no).toBe(false);
  });
});
