import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentedMetrics, exposition, sample } from '../helpers/metrics-doc.js';
import type { RewindProcess } from '../helpers/rewind-process.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { eventually } from './kube-helpers.js';
import { startRewindStack, waitFor, type RewindStack } from './rewind-stack.js';

const NS = 'metrics';

/**
 * `rewind controller --metrics` on a real API server: each ProtectedVolume's Degraded
 * condition, as the reconciler writes it, is a gauge the alert RewindProtectionDegraded
 * reads, labelled with the collector volume; a deleted object's series go.
 */
describe('the controller /metrics against a real API server and collector', () => {
  let cp: ControlPlane;
  let stack: RewindStack;
  let ctl: RewindProcess;
  let dir: string;
  const scrape = async () => {
    const r = await fetch(`${ctl.info.metrics}/metrics`);
    expect(r.status).toBe(200);
    return r.text();
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-ctl-metrics-'));
    cp = await startControlPlane();
    stack = await startRewindStack(cp, dir);
    ctl = await stack.startController(['--no-leader-elect', '--metrics', '127.0.0.1:0']);
    expect(ctl.info.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ns = await cp.kubectl(['create', 'namespace', NS]);
    expect(ns.code, ns.stderr).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await stack?.stop();
    await cp?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports the documented gauges: Degraded=1 for a volume whose collector is unreachable, 0 for a healthy one, and drops a deleted one', async () => {
    const apply = await cp.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: good}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 16Mi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: lost}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 16Mi}}}
---
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: good}
spec: {pvcName: good, rpoTargetSeconds: 30}
---
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: lost}
spec: {pvcName: lost, collector: {address: "127.0.0.1:1"}}
`,
    });
    expect(apply.code, apply.stderr).toBe(0);
    const good = await waitFor(cp, 'rwpv/good', NS, 'Ready', (o) => o.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
    const lost = await waitFor(cp, 'rwpv/lost', NS, 'Degraded', (o) => o.status?.conditions?.some((c: any) => c.type === 'Degraded' && c.status === 'True'));
    const g = `{namespace="${NS}",protected_volume="good",volume="${good.status.collectorVolume}"}`;
    const l = `{namespace="${NS}",protected_volume="lost",volume="${lost.status.collectorVolume}"}`;

    const text = await eventually('the Degraded gauges', 30_000, async () => {
      const t = await scrape();
      expect(sample(t, `rewind_protected_volume_degraded${l}`)).toBe(1);
      expect(sample(t, `rewind_protected_volume_degraded${g}`)).toBe(0);
      return t;
    });
    expect(sample(text, `rewind_protected_volume_rpo_target_seconds${g}`)).toBe(30);
    expect(sample(text, `rewind_protected_volume_protected${g}`)).toBe(0); // no node streams it
    expect(sample(text, `rewind_protected_volume_lag_seconds${g}`)).toBe(0);
    expect(text).not.toContain(`rewind_protected_volume_rpo_target_seconds${l}`);
    const exposed = exposition(text);
    for (const d of documentedMetrics().values()) {
      if (!d.sides.has('controller')) continue;
      expect(exposed.get(d.name), d.name).toEqual({ help: d.help, type: d.type });
    }

    const del = await cp.kubectl(['delete', '-n', NS, 'rwpv/lost', '--wait=true']);
    expect(del.code, del.stderr).toBe(0);
    await eventually('the deleted object\'s series gone', 30_000, async () => ((await scrape()).includes('protected_volume="lost"') ? undefined : true));
  });
});
