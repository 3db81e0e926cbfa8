import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRINTER_COLUMNS } from '../../src/api/index.js';
import { parseInstant } from '../../src/core/time-parse.js';
import { peer, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { eventually, kubectlTable, ROOT } from './kube-helpers.js';
import { getJson, startRewindStack, waitFor, type RewindStack } from './rewind-stack.js';

const NS = 'app';
const SIZE = 16 << 20;

/**
 * The operator end to end on a real API server: ProtectedVolume → Protected while the node
 * side (`rewind serve --collector`, as the CSI node plugin runs it) streams real qemu-io
 * writes; `kubectl create restorepoint` through the real kubectl's plugin dispatch; and
 * VolumeRestores whose images equal the sha256 taken at the instant.
 */
describe('the controller against a real API server and a real collector', () => {
  let cp: ControlPlane;
  let stack: RewindStack;
  let dir: string;
  let node: RewindProcess | undefined;
  let volume: string;
  let token: string;
  const shas: Record<string, string> = {};
  const kubectlEnv = () => ({ PATH: `${path.join(ROOT, 'bin')}:${process.env.PATH}` });

  const startNode = async () => {
    node = await startRewind([
      'serve', '--backing', path.join(dir, 'data.img'), '--size', String(SIZE), '--spool', path.join(dir, 'spool'), '--listen', '127.0.0.1:0',
      '--collector', stack.collectorAddress, '--collector-plaintext', '--volume', volume, '--token-file', path.join(dir, 'data.token'), '--durability', 'flush-sync',
    ]);
    return node.info.nbd!;
  };
  /** qemu-io writes a pattern and flushes at exit: in flush-sync mode, that is on the collector. */
  const write = (uri: string, pattern: number, offset: number, len: number) => peer('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} ${offset} ${len}`, uri]);
  const backingSha = () => sha256File(path.join(dir, 'data.img'));

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-ctl-'));
    cp = await startControlPlane();
    stack = await startRewindStack(cp, dir);
    await stack.startController(['--no-leader-elect']);
    const ns = await cp.kubectl(['create', 'namespace', NS]);
    expect(ns.code, ns.stderr).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await node?.stop();
    await stack?.stop();
    await cp?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers a ProtectedVolume on the collector and issues its token Secret', async () => {
    const apply = await cp.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 16Mi}}}
---
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: data}
spec: {pvcName: data, rpoTargetSeconds: 30}
`,
    });
    expect(apply.code, apply.stderr).toBe(0);
    const pv = await waitFor(cp, 'rwpv/data', NS, 'Ready', (o) => o.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
    const pvc = await getJson(cp, 'pvc/data', NS);
    volume = pv.status.collectorVolume;
    expect(volume).toBe(`pvc-${pvc.metadata.uid}`);
    expect(pv.status.conditions.find((c: any) => c.type === 'Protected')).toMatchObject({ status: 'False', reason: 'WaitingForWriter' });
    const secret = await getJson(cp, `secret/${pv.status.tokenSecretName}`, NS);
    token = Buffer.from(secret.data.token, 'base64').toString();
    expect(secret.metadata.ownerReferences[0]).toMatchObject({ kind: 'ProtectedVolume', name: 'data', uid: pv.metadata.uid });
    fs.writeFileSync(path.join(dir, 'data.token'), token, { mode: 0o600 });
    // The collector holds the volume with exactly that token: a wrong one is refused.
    const st = await stack.api.status(volume, token);
    expect(st.size).toBe(BigInt(SIZE));
    await expect(stack.api.status(volume, 'not-the-token')).rejects.toThrow(/REWIND_ERR_UNAUTHENTICATED|refused/);
  });

  it('is Protected once the node side streams, with status equal to the collector\'s own', async () => {
    const uri = await startNode();
    await write(uri, 0x11, 0, 1 << 20);
    const w = await cp.kubectl(['wait', '--for=condition=Protected', 'rwpv/data', '-n', NS, '--timeout=60s']);
    expect(w.code, w.stderr).toBe(0);
    // Writes are quiet now: the next refresh must match the collector exactly.
    const st = await stack.api.status(volume, token);
    const pv = await waitFor(cp, 'rwpv/data', NS, 'status caught up with the collector', (o) => o.status?.durableSeq === Number(st.durableSeq));
    expect(pv.status.journalBytes).toBe(Number(st.journalBytes));
    expect(parseInstant(pv.status.latestDurableTime)).toBe(st.durableTime);
    expect(parseInstant(pv.status.restorableWindow.from)).toBe(st.windowOldest);
    expect(parseInstant(pv.status.restorableWindow.to)).toBe(st.windowNewest);
    expect(pv.status.durability).toBe('flush-sync');
    expect(pv.status.rpoMet).toBe(true);
    expect(pv.status.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(pv.status.lagSeconds).toBeLessThan(30);
    // The planner's bandwidth for the 30 s RPO over what was written, and no cap to fall short of it.
    const planned = await waitFor(cp, 'rwpv/data', NS, 'a plan for the RPO target', (o) => o.status?.recommendedBandwidthBytesPerSecond !== undefined);
    const plan = await stack.api.plan(volume, token, { rpo: '30s' });
    expect(planned.status.recommendedBandwidthBytesPerSecond).toBe(Math.ceil(plan.rpo!.recommendedBandwidth));
    expect(planned.status.recommendedBandwidthBytesPerSecond).toBeGreaterThan(0);
    expect(planned.status.linkMeetsRpo).toBe(true);
    shas.before = await backingSha();
  });

  it('kubectl create restorepoint (the plugin, dispatched by the real kubectl) resolves to a time and seq', async () => {
    const r = await cp.kubectl(['create', 'restorepoint', 'before', '--volume', 'data', '-n', NS], { env: kubectlEnv() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('restorepoint.cdp.rewind.dev/before created');
    const rp = await waitFor(cp, 'rwrp/before', NS, 'Ready', (o) => o.status?.phase === 'Ready');
    const marks = await stack.api.listMarks(volume, token);
    const mark = marks.find((m) => m.id === rp.metadata.uid);
    expect(mark, 'the mark is keyed by the RestorePoint UID').toBeDefined();
    expect(rp.status.seq).toBe(Number(mark!.seq));
    expect(parseInstant(rp.status.time)).toBe(mark!.time);
    expect(rp.status.changedBytesSincePrevious).toBe(0);
    expect(rp.metadata.finalizers).toContain('cdp.rewind.dev/mark');
  });

  it('resolves an `at` instant, and counts the bytes changed since the previous point', async () => {
    await write(node!.info.nbd!, 0x22, 4 << 20, 512 << 10);
    shas.mid = await backingSha();
    const at = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    await write(node!.info.nbd!, 0x33, 8 << 20, 256 << 10);
    await write(node!.info.nbd!, 0x44, 0, 64 << 10);
    shas.after = await backingSha();
    const r = await cp.kubectl(['create', 'restorepoint', 'mid', '--volume', 'data', '--at', at, '-n', NS], { env: kubectlEnv() });
    expect(r.code, r.stderr).toBe(0);
    const rp = await waitFor(cp, 'rwrp/mid', NS, 'Ready', (o) => o.status?.phase === 'Ready');
    expect(parseInstant(rp.status.time)).toBeLessThanOrEqual(parseInstant(at));
    expect(rp.status.changedBytesSincePrevious).toBe(512 << 10);
  });

  it('refuses a RestorePoint in the future with a condition and an event', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const r = await cp.kubectl(['create', 'restorepoint', 'later', '--volume', 'data', '--at', future, '-n', NS], { env: kubectlEnv() });
    expect(r.code, r.stderr).toBe(0);
    const rp = await waitFor(cp, 'rwrp/later', NS, 'Failed', (o) => o.status?.phase === 'Failed');
    expect(rp.status.conditions[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'AtInFuture' });
    const ev = await eventually('an AtInFuture event', 20_000, async () => {
      const e = await cp.kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=later', '-o', 'json']);
      const items = JSON.parse(e.stdout).items as Array<{ reason: string; type: string }>;
      return items.find((i) => i.reason === 'AtInFuture');
    });
    expect(ev.type).toBe('Warning');
  });

  it('restores a RestorePoint and an instant into new PVCs equal to the sha256 taken then', async () => {
    const apply = await cp.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: `
apiVersion: cdp.rewind.dev/v1alpha1
kind: VolumeRestore
metadata: {name: from-point}
spec: {volume: data, source: {restorePoint: before}, target: {newPVC: {name: data-before}}}
---
apiVersion: cdp.rewind.dev/v1alpha1
kind: VolumeRestore
metadata: {name: from-instant}
spec: {volume: data, source: {at: "${(await getJson(cp, 'rwrp/mid', NS)).status.time}"}, target: {newPVC: {name: data-mid}}}
`,
    });
    expect(apply.code, apply.stderr).toBe(0);
    for (const [vrName, pvcName, sha] of [['from-point', 'data-before', shas.before], ['from-instant', 'data-mid', shas.mid]] as const) {
      const vr = await waitFor(cp, `rwvr/${vrName}`, NS, 'Completed', (o) => o.status?.phase === 'Completed' || o.status?.phase === 'Failed', 90_000);
      expect(vr.status.phase, JSON.stringify(vr.status.conditions)).toBe('Completed');
      expect(vr.status.bytesDone).toBe(SIZE);
      expect(vr.status.bytesTotal).toBe(SIZE);
      const pvc = await getJson(cp, `pvc/${pvcName}`, NS);
      expect(pvc.metadata.annotations['cdp.rewind.dev/restore-state']).toBe('Completed');
      const target = await waitFor(cp, `rwpv/${pvcName}`, NS, 'registered', (o) => !!o.status?.collectorVolume);
      const tsecret = await getJson(cp, `secret/${target.status.tokenSecretName}`, NS);
      const out = path.join(dir, `${pvcName}.img`);
      await stack.api.restoreToFile(target.status.collectorVolume, Buffer.from(tsecret.data.token, 'base64').toString(), { now: true }, out);
      expect(await sha256File(out), `${vrName} equals the image taken then`).toBe(sha);
    }
    // The restored PVC as a workload meets it: the node side starts on a new, empty device
    // and fills it from the collector before it serves the first byte over NBD.
    const target = await getJson(cp, 'rwpv/data-before', NS);
    const tsecret = await getJson(cp, `secret/${target.status.tokenSecretName}`, NS);
    const tdir = path.join(dir, 'node-data-before');
    fs.mkdirSync(tdir);
    fs.writeFileSync(path.join(tdir, 'token'), Buffer.from(tsecret.data.token, 'base64'), { mode: 0o600 });
    const restoredNode = await startRewind([
      'serve', '--backing', path.join(tdir, 'vol.img'), '--size', String(SIZE), '--spool', path.join(tdir, 'spool'), '--listen', '127.0.0.1:0',
      '--collector', stack.collectorAddress, '--collector-plaintext', '--volume', target.status.collectorVolume, '--token-file', path.join(tdir, 'token'), '--durability', 'flush-sync',
    ]);
    try {
      const seen = path.join(tdir, 'seen.img');
      await peer('nbdcopy', [restoredNode.info.nbd!, seen]);
      expect(await sha256File(seen), 'the restored PVC read over NBD').toBe(shas.before);
    } finally {
      await restoredNode.stop();
    }
  });

  it('kubectl rewind status / points / restore --wait work through the real kubectl', async () => {
    const st = await cp.kubectl(['rewind', 'status', 'data', '-n', NS], { env: kubectlEnv() });
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/data/);
    expect(st.stdout).toMatch(/flush-sync/);
    const pts = await cp.kubectl(['rewind', 'points', 'data', '-n', NS, '-o', 'name'], { env: kubectlEnv() });
    expect(pts.code, pts.stderr).toBe(0);
    // Oldest first: before, then mid (later is Failed: it has no time).
    const names = pts.stdout.trim().split('\n').filter((l) => !l.endsWith('/later'));
    expect(names).toEqual(['restorepoint.cdp.rewind.dev/before', 'restorepoint.cdp.rewind.dev/mid']);
    const r = await cp.kubectl(['rewind', 'restore', 'data', '--point', 'mid', '--to-pvc', 'data-mid-2', '--name', 'via-plugin', '--wait', '--timeout', '90s', '-n', NS], { env: kubectlEnv(), timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const vr = await getJson(cp, 'rwvr/via-plugin', NS);
    expect(vr.status.phase).toBe('Completed');
    const target = await getJson(cp, 'rwpv/data-mid-2', NS);
    const tsecret = await getJson(cp, `secret/${target.status.tokenSecretName}`, NS);
    const out = path.join(dir, 'via-plugin.img');
    await stack.api.restoreToFile(target.status.collectorVolume, Buffer.from(tsecret.data.token, 'base64').toString(), { now: true }, out);
    expect(await sha256File(out)).toBe(shas.mid);
  });

  it('--dry-run=server is validated by the real API server and creates nothing', async () => {
    const ok = await cp.kubectl(['create', 'restorepoint', 'dry', '--volume', 'data', '--dry-run=server', '-n', NS], { env: kubectlEnv() });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('(server dry run)');
    const gone = await cp.kubectl(['get', 'rwrp/dry', '-n', NS]);
    expect(gone.code).not.toBe(0);
    // A name the API server refuses is refused by it, not only by the plugin.
    const bad = await cp.kubectl(['rewind', 'restore', 'data', '--point', 'mid', '--in-place', '--to-pvc', 'x', '--dry-run=server', '-n', NS], { env: kubectlEnv() });
    expect(bad.code).not.toBe(0);
  });

  it('refuses an in-place revert while a node streams the volume', async () => {
    const apply = await cp.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: `
apiVersion: cdp.rewind.dev/v1alpha1
kind: VolumeRestore
metadata: {name: in-place-busy}
spec: {volume: data, source: {restorePoint: before}, target: {inPlace: true}}
`,
    });
    expect(apply.code, apply.stderr).toBe(0);
    const vr = await waitFor(cp, 'rwvr/in-place-busy', NS, 'Failed', (o) => o.status?.phase === 'Failed');
    expect(vr.status.conditions.find((c: any) => c.type === 'Failed')).toMatchObject({ status: 'True', reason: 'VolumeInUse' });
    expect(vr.status.conditions.find((c: any) => c.type === 'Failed').message).toMatch(/scale it to 0/);
  });

  it('reverts in place only the blocks that changed, once nothing streams the volume', async () => {
    await node!.stop();
    node = undefined;
    const before = await stack.api.status(volume, token);
    await eventually('the writer to disconnect', 20_000, async () => ((await stack.api.status(volume, token)).writerConnected ? undefined : true));
    const apply = await cp.kubectl(['apply', '-n', NS, '-f', '-'], {
      input: `
apiVersion: cdp.rewind.dev/v1alpha1
kind: VolumeRestore
metadata: {name: in-place}
spec: {volume: data, source: {restorePoint: before}, target: {inPlace: true}}
`,
    });
    expect(apply.code, apply.stderr).toBe(0);
    const vr = await waitFor(cp, 'rwvr/in-place', NS, 'done', (o) => o.status?.phase === 'Completed' || o.status?.phase === 'Failed', 90_000);
    expect(vr.status.phase, JSON.stringify(vr.status.conditions)).toBe('Completed');
    const out = path.join(dir, 'reverted.img');
    await stack.api.restoreToFile(volume, token, { now: true }, out);
    expect(await sha256File(out)).toBe(shas.before);
    // Only what differs between the point and now went into the journal: the 64 KiB
    // overwritten at 0 comes back as data, the two regions written later as zero runs; not
    // the 16 MiB image.
    const after = await stack.api.status(volume, token);
    const added = after.journalBytes - before.journalBytes;
    expect(added).toBeGreaterThanOrEqual(BigInt(64 << 10));
    expect(added).toBeLessThan(BigInt(1 << 20));
    expect(after.durableSeq - before.durableSeq).toBeGreaterThanOrEqual(3n);
    // The revert is history too: the instant before it is still there.
    const pre = path.join(dir, 'pre-revert.img');
    await stack.api.restoreToFile(volume, token, { seq: before.durableSeq }, pre);
    expect(await sha256File(pre)).toBe(shas.after);
    // The node attaches the volume again: it pulls the revert before serving, rather than
    // shipping its own (pre-revert) device over it.
    const uri = await startNode();
    const seen = path.join(dir, 'seen-after-revert.img');
    await peer('nbdcopy', [uri, seen]);
    expect(await sha256File(seen), 'the reverted volume read over NBD').toBe(shas.before);
    await eventually('the collector to stay reverted', 10_000, async () => ((await stack.api.status(volume, token)).writerConnected ? true : undefined));
    const now = path.join(dir, 'reverted-now.img');
    await stack.api.restoreToFile(volume, token, { now: true }, now);
    expect(await sha256File(now)).toBe(shas.before);
  });

  it('shows every printer column filled for each kind', async () => {
    for (const [kind, res] of [['ProtectedVolume', 'rwpv/data'], ['RestorePoint', 'rwrp/before'], ['VolumeRestore', 'rwvr/from-point']] as const) {
      const t = await kubectlTable(cp, [res, '-n', NS, '-o', 'wide']);
      expect(t.headers).toEqual(['NAME', ...PRINTER_COLUMNS[kind]!.map((c) => c.name.toUpperCase())]);
      for (const [i, h] of t.headers.entries()) expect(t.rows[0]![i], `${kind} ${h}`).not.toMatch(/^(<none>|)$/);
    }
  });

  it('deleting a RestorePoint runs its finalizer: the mark is gone from the collector', async () => {
    const rp = await getJson(cp, 'rwrp/before', NS);
    const del = await cp.kubectl(['delete', 'rwrp/before', '-n', NS, '--timeout=60s']);
    expect(del.code, del.stderr).toBe(0);
    const marks = await stack.api.listMarks(volume, token);
    expect(marks.find((m) => m.id === rp.metadata.uid)).toBeUndefined();
    expect(marks.length).toBeGreaterThan(0);
    void crypto;
  });
});
