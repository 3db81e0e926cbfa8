import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRINTER_COLUMNS, SHORT_NAMES, CATEGORY } from '../../src/api/index.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { applyCrds, kubectlTable, ROOT } from './kube-helpers.js';

const yaml = (doc: string): string => doc.replace(/^\n/, '');

/** What the real API server itself must refuse: OpenAPI structure, enums, and the CEL rules. */
describe('the CRDs on a real kube-apiserver', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
    await applyCrds(cp);
    const ns = await cp.kubectl(['create', 'namespace', 'crd-check']);
    expect(ns.code, ns.stderr).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await cp?.stop();
  });

  const create = (doc: string) => cp.kubectl(['create', '-n', 'crd-check', '-f', '-'], { input: yaml(doc) });

  it('kubectl apply -f crds/ installs all three, Established', async () => {
    const r = await cp.kubectl(['get', 'crd', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}']);
    expect(r.stdout.trim().split('\n').sort()).toEqual([
      'protectedvolumes.cdp.rewind.dev=True',
      'restorepoints.cdp.rewind.dev=True',
      'volumerestores.cdp.rewind.dev=True',
    ]);
    const again = await cp.kubectl(['apply', '-f', path.join(ROOT, 'crds')]);
    expect(again.code, again.stderr).toBe(0);
  });

  it('accepts a ProtectedVolume with defaults filled in by the schema', async () => {
    const r = await create(`
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: good}
spec: {pvcName: data}
`);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse((await cp.kubectl(['get', 'rwpv', 'good', '-n', 'crd-check', '-o', 'json'])).stdout) as { spec: Record<string, unknown> };
    expect(got.spec).toMatchObject({ durability: 'flush-sync', retention: { pointInTime: '24h', marks: '168h' } });
  });

  it.each([
    ['a negative retention', 'spec: {pvcName: data, retention: {pointInTime: "-1h"}}', /pointInTime/],
    ['a zero retention', 'spec: {pvcName: data, retention: {pointInTime: "0s"}}', /pointInTime|greater than zero|positive/i],
    ['marks kept shorter than any-point history', 'spec: {pvcName: data, retention: {pointInTime: "48h", marks: "24h"}}', /retention.marks must be at least retention.pointInTime/],
    ['an unknown durability mode', 'spec: {pvcName: data, durability: fast}', /Unsupported value: "fast"/],
    ['a negative bandwidth cap', 'spec: {pvcName: data, shipping: {bandwidthBytesPerSecond: -5}}', /bandwidthBytesPerSecond/],
    ['no pvcName', 'spec: {durability: async}', /pvcName: Required value/],
  ])('refuses a ProtectedVolume with %s', async (_what, spec, message) => {
    const r = await create(`
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: bad}
${spec}
`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it('refuses a change of pvcName (history belongs to one PVC)', async () => {
    const r = await cp.kubectl(['patch', 'rwpv', 'good', '-n', 'crd-check', '--type=merge', '-p', '{"spec":{"pvcName":"other"}}']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/immutable/i);
  });

  it.each([
    ['neither volume nor selector', 'spec: {at: "2026-01-01T00:00:00Z"}'],
    ['both volume and selector', 'spec: {volume: data, selector: {matchLabels: {app: db}}}'],
  ])('refuses a RestorePoint with %s', async (_what, spec) => {
    const r = await create(`
apiVersion: cdp.rewind.dev/v1alpha1
kind: RestorePoint
metadata: {name: bad}
${spec}
`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/exactly one of spec.volume/);
  });

  it('refuses a RestorePoint whose at is not a date-time, and any later change of its spec', async () => {
    const bad = await create(`
apiVersion: cdp.rewind.dev/v1alpha1
kind: RestorePoint
metadata: {name: bad-at}
spec: {volume: data, at: "yesterday"}
`);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/at/);
    const ok = await create(`
apiVersion: cdp.rewind.dev/v1alpha1
kind: RestorePoint
metadata: {name: before}
spec: {volume: data}
`);
    expect(ok.code, ok.stderr).toBe(0);
    const change = await cp.kubectl(['patch', 'rwrp', 'before', '-n', 'crd-check', '--type=merge', '-p', '{"spec":{"volume":"other"}}']);
    expect(change.code).not.toBe(0);
    expect(change.stderr).toMatch(/immutable/i);
  });

  it.each([
    ['no source', 'spec: {volume: data, target: {inPlace: true}, source: {}}', /source/],
    ['two sources', 'spec: {volume: data, target: {inPlace: true}, source: {restorePoint: before, at: "2026-01-01T00:00:00Z"}}', /source/],
    ['two targets', 'spec: {volume: data, source: {restorePoint: before}, target: {inPlace: true, newPVC: {name: x}}}', /target/],
    ['no target', 'spec: {volume: data, source: {restorePoint: before}, target: {}}', /target/],
  ])('refuses a VolumeRestore with %s', async (_what, spec, message) => {
    const r = await create(`
apiVersion: cdp.rewind.dev/v1alpha1
kind: VolumeRestore
metadata: {name: bad}
${spec}
`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it('has short names that no other resource of the API server uses, and the rewind category', async () => {
    const ours = Object.values(SHORT_NAMES).flat();
    expect(new Set(ours).size).toBe(ours.length);
    const table = await kubectlTable(cp, [], { raw: ['api-resources', '-o', 'wide'] });
    const col = (h: string) => table.headers.indexOf(h);
    const taken = new Map<string, string>();
    for (const row of table.rows) {
      const group = row[col('APIVERSION')]!;
      if (group.startsWith('cdp.rewind.dev/')) continue;
      for (const n of [row[col('NAME')]!, ...row[col('SHORTNAMES')]!.split(',').filter(Boolean)]) taken.set(n, `${row[col('NAME')]} (${group})`);
    }
    expect(taken.size).toBeGreaterThan(40);
    for (const n of ours) expect(taken.get(n), `short name ${n}`).toBeUndefined();
    // Each short name resolves to exactly our kind, so `kubectl get rwrp` is never ambiguous.
    for (const [kind, names] of Object.entries(SHORT_NAMES)) {
      for (const n of names) {
        const e = await cp.kubectl(['explain', n]);
        expect(e.code, e.stderr).toBe(0);
        expect(e.stdout).toMatch(new RegExp(`KIND:\\s+${kind}\\b`));
      }
    }
    const cat = await cp.kubectl(['get', CATEGORY, '-n', 'crd-check', '-o', 'name']);
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout).toContain('protectedvolume.cdp.rewind.dev/good');
    expect(cat.stdout).toContain('restorepoint.cdp.rewind.dev/before');
  });

  it('fills every printer column from a status of the shape the controller writes', async () => {
    const vr = await create(`
apiVersion: cdp.rewind.dev/v1alpha1
kind: VolumeRestore
metadata: {name: back}
spec: {volume: data, source: {restorePoint: before}, target: {newPVC: {name: data-restored}}}
`);
    expect(vr.code, vr.stderr).toBe(0);
    const t = '2026-12-04T10:00:00.123456789Z';
    const statuses: Record<string, [string, string, unknown]> = {
      ProtectedVolume: ['protectedvolumes', 'good', {
        conditions: ['Ready', 'Protected', 'Degraded'].map((type) => ({ type, status: type === 'Degraded' ? 'False' : 'True', reason: 'AsExpected', message: 'x', lastTransitionTime: '2026-12-04T10:00:00Z' })),
        durability: 'flush-sync', lagSeconds: 0.25, journalBytes: 4096, rpoMet: true, latestDurableTime: t, protectedSince: t,
        restorableWindow: { from: t, to: t }, durableSeq: 7, collectorVolume: 'pvc-x', tokenSecretName: 'rewind-token-good',
      }],
      RestorePoint: ['restorepoints', 'before', { phase: 'Ready', time: t, seq: 7, changedBytesSincePrevious: 0, markId: 'uid' }],
      VolumeRestore: ['volumerestores', 'back', { phase: 'Completed', bytesDone: 4096, bytesTotal: 4096, resolvedTime: t, resolvedSeq: 7 }],
    };
    for (const [kind, [plural, name, status]] of Object.entries(statuses)) {
      const obj = JSON.parse((await cp.kubectl(['get', plural, name, '-n', 'crd-check', '-o', 'json'])).stdout) as Record<string, unknown>;
      const put = await cp.kubectl(['replace', '--subresource=status', '-f', '-'], { input: JSON.stringify({ ...obj, status }) });
      expect(put.code, put.stderr).toBe(0);
      const table = await kubectlTable(cp, [plural, name, '-n', 'crd-check', '-o', 'wide']);
      const cols = PRINTER_COLUMNS[kind]!;
      expect(table.headers).toEqual(['NAME', ...cols.map((c) => c.name.toUpperCase())]);
      for (const [i, h] of table.headers.entries()) {
        expect(table.rows[0]![i], `${kind} column ${h}`).not.toMatch(/^(<none>|)$/);
      }
    }
  });
});
