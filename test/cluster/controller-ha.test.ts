import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRewind, type RewindProcess } from '../helpers/rewind-process.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { eventually } from './kube-helpers.js';
import { CONTROLLER_NAMESPACE, getJson, startRewindStack, waitFor, type RewindStack } from './rewind-stack.js';

const NS = 'ha';

/** What a controller must survive: a second replica, kill -9 at the worst moment, a concurrent writer. */
describe('the controller under crashes, conflicts and a second replica', () => {
  let cp: ControlPlane;
  let stack: RewindStack;
  let dir: string;
  let volume: string;
  let token: string;

  const leaseHolder = async (): Promise<string | undefined> => {
    const r = await cp.kubectl(['get', 'lease', 'rewind-controller', '-n', CONTROLLER_NAMESPACE, '-o', 'jsonpath={.spec.holderIdentity}']);
    return r.code === 0 && r.stdout ? r.stdout : undefined;
  };
  const createPoints = (names: string[]) =>
    cp.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: names.map((n) => `apiVersion: cdp.rewind.dev/v1alpha1\nkind: RestorePoint\nmetadata: {name: ${n}}\nspec: {volume: data}\n`).join('---\n'),
    });
  /** Marks on the collector per RestorePoint UID. */
  const marksByUid = async () => {
    const counts = new Map<string, number>();
    for (const m of await stack.api.listMarks(volume, token)) counts.set(m.id ?? '', (counts.get(m.id ?? '') ?? 0) + 1);
    return counts;
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-ha-'));
    cp = await startControlPlane();
    stack = await startRewindStack(cp, dir);
    const apply = await cp.kubectl(['apply', '-f', '-'], {
      input: `
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: ${NS}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 4Mi}}}
---
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: data, namespace: ${NS}}
spec: {pvcName: data}
`,
    });
    expect(apply.code, apply.stderr).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await stack?.stop();
    await cp?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('two replicas: one leads; kill -9 of the leader and the other takes over within the Lease time', async () => {
    const a = await stack.startController(['--identity', 'replica-a']);
    const first = await eventually('a leader', 20_000, leaseHolder);
    const b = await stack.startController(['--identity', 'replica-b']);
    expect(first).toBe('replica-a');
    const pv = await waitFor(cp, 'rwpv/data', NS, 'Ready', (o) => o.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
    volume = pv.status.collectorVolume;
    const secret = await getJson(cp, `secret/${pv.status.tokenSecretName}`, NS);
    token = Buffer.from(secret.data.token, 'base64').toString();
    // The follower reconciles nothing while it waits.
    await new Promise((r) => setTimeout(r, 1500));
    expect(b.stderr()).not.toContain('controller running');
    expect(a.stderr()).toContain('controller running');

    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    const next = await eventually('replica-b to take the Lease', 15_000, async () => ((await leaseHolder()) === 'replica-b' ? 'replica-b' : undefined));
    const took = Date.now() - killedAt;
    expect(next).toBe('replica-b');
    // Lease 4 s, retry 0.5 s: the follower must not wait much past one Lease duration.
    expect(took).toBeLessThan(4000 + 2 * 500 + 1500);
    await eventually('replica-b running', 10_000, async () => (b.stderr().includes('controller running') ? true : undefined));
    // The new leader reconciles: a RestorePoint made now resolves.
    expect((await createPoints(['after-failover'])).code).toBe(0);
    await waitFor(cp, 'rwrp/after-failover', NS, 'Ready', (o) => o.status?.phase === 'Ready');

    // A graceful stop hands the Lease over at once (released, not left to expire).
    const c = await stack.startController(['--identity', 'replica-c']);
    const stoppedAt = Date.now();
    expect(await b.stop()).toBe(0);
    await eventually('replica-c to take the released Lease', 10_000, async () => ((await leaseHolder()) === 'replica-c' ? true : undefined));
    expect(Date.now() - stoppedAt).toBeLessThan(4000);
    expect(await c.stop()).toBe(0);
  });

  it('kill -9 between making a mark and recording it: the restart makes no second mark', async () => {
    const env = { ...process.env, REWIND_FAILPOINTS: 'restorepoint-after-mark=kill' };
    const doomed = await startWithEnv(env, stack);
    expect((await createPoints(['crash'])).code).toBe(0);
    await eventually('the controller to die at the failpoint', 20_000, async () => (doomed.child.exitCode !== null || doomed.child.signalCode !== null ? true : undefined));
    expect(doomed.child.signalCode).toBe('SIGKILL');
    const rp = await getJson(cp, 'rwrp/crash', NS);
    expect(rp.status?.phase).not.toBe('Ready');
    expect((await marksByUid()).get(rp.metadata.uid), 'the mark was made before the kill').toBe(1);

    const again = await stack.startController(['--no-leader-elect']);
    const ready = await waitFor(cp, 'rwrp/crash', NS, 'Ready', (o) => o.status?.phase === 'Ready');
    expect((await marksByUid()).get(ready.metadata.uid)).toBe(1);
    const mark = (await stack.api.listMarks(volume, token)).find((m) => m.id === ready.metadata.uid)!;
    expect(ready.status.seq).toBe(Number(mark.seq));
    await again.stop();
  });

  it('kill -9 while many RestorePoints are reconciling: after a restart every one is Ready, with one mark each', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `burst-${i}`);
    const c = await stack.startController(['--no-leader-elect']);
    expect((await createPoints(names)).code).toBe(0);
    await eventually('the first of the burst to be Ready', 30_000, async () => {
      const r = await cp.kubectl(['get', 'rwrp', '-n', NS, '-o', 'jsonpath={.items[?(@.status.phase=="Ready")].metadata.name}']);
      return r.stdout.includes('burst-') ? true : undefined;
    });
    c.child.kill('SIGKILL');
    await new Promise<void>((r) => c.child.once('exit', () => r()));
    const again = await stack.startController(['--no-leader-elect']);
    for (const n of names) await waitFor(cp, `rwrp/${n}`, NS, 'Ready', (o) => o.status?.phase === 'Ready');
    const counts = await marksByUid();
    for (const n of names) {
      const rp = await getJson(cp, `rwrp/${n}`, NS);
      expect(counts.get(rp.metadata.uid), n).toBe(1);
    }
    await again.stop();
  });

  it('a 409 on the status write (a second writer changed the object) is retried, not lost', async () => {
    const env = { ...process.env, REWIND_FAILPOINTS: 'restorepoint-before-status-write=sleep:3000' };
    const slow = await startWithEnv(env, stack);
    expect((await createPoints(['conflict'])).code).toBe(0);
    await eventually('the controller to pause before its status write', 20_000, async () => (slow.stderr().includes('restorepoint-before-status-write') ? true : undefined));
    // Meanwhile someone else changes the object: the controller's write carries an older resourceVersion.
    const label = await cp.kubectl(['label', 'rwrp/conflict', '-n', NS, 'touched=yes']);
    expect(label.code, label.stderr).toBe(0);
    const rp = await waitFor(cp, 'rwrp/conflict', NS, 'Ready', (o) => o.status?.phase === 'Ready', 30_000);
    expect(rp.metadata.labels.touched).toBe('yes');
    expect(slow.stderr()).toMatch(/reconcile failed; will retry[^\n]*409|Conflict|the object has been modified/);
    expect((await marksByUid()).get(rp.metadata.uid)).toBe(1);
    await slow.stop();
  });
});

async function startWithEnv(env: NodeJS.ProcessEnv, stack: RewindStack): Promise<RewindProcess> {
  const saved = process.env.REWIND_FAILPOINTS;
  process.env.REWIND_FAILPOINTS = env.REWIND_FAILPOINTS;
  try {
    return await startRewind([
      'controller', '--kubeconfig', stack.controllerKubeconfig, '--collector', stack.collectorAddress, '--collector-admin-token-file', stack.adminTokenFile,
      '--collector-plaintext', '--no-leader-elect', '--resync', '1s',
    ]);
  } finally {
    if (saved === undefined) delete process.env.REWIND_FAILPOINTS;
    else process.env.REWIND_FAILPOINTS = saved;
  }
}
