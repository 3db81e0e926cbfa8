import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { volumePaths } from '../../src/csi/node-state.js';
import { TOPOLOGY_KEY } from '../../src/csi/proto.js';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import { cleanUpCsiHost, csiClient, leftovers, startCsiProcess, type CsiClient } from '../helpers/csi-driver.js';
import { peer, sha256Export, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

/**
 * The node service called over its socket the way kubelet calls it (paths under
 * /var/lib/kubelet's layout, the PV's volumeAttributes as volume_context, the
 * node-stage secret, pod info in the publish context), with the volume shipping to a
 * real `rewind collector`: what the filesystem made durable is restorable off the node.
 */
const SIZE = 128 * 1024 * 1024;
const ADMIN = 'csi-node-admin-token-0123456789abcdef';
const TOKEN = 'csi-node-volume-token-0123456789abcdef';
const NODE = 'node-a';
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function postMark(controlSocket: string, name: string): Promise<{ name: string; seq: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ name });
    const req = http.request({ socketPath: controlSocket, path: '/v1/marks', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(text)) : reject(new Error(`POST /v1/marks: ${res.statusCode} ${text}`))));
    });
    req.once('error', reject);
    req.end(body);
  });
}

async function writeTree(root: string, seed: number): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (let d = 0; d < 3; d++) {
    await fs.mkdir(path.join(root, `dir${seed}-${d}`, 'sub'), { recursive: true });
    for (let f = 0; f < 5; f++) {
      const body = Buffer.alloc(3000 + ((d * 7 + f * 131 + seed) % 40) * 1024).map((_, i) => (i * (d + 3) + f + seed) & 0xff);
      const rel = path.join(`dir${seed}-${d}`, f % 2 ? 'sub' : '', `file${f}.bin`);
      await fs.writeFile(path.join(root, rel), body);
      files.set(rel, sha(body));
    }
  }
  return files;
}

describe('NodeStage + NodePublish as kubelet calls them, shipping to a real collector', () => {
  let dir: string;
  let collector: RewindProcess;
  let api: CollectorApi;
  let driver: { proc: RewindProcess; endpoint: string; stateDir: string };
  let ctl: CsiClient;
  let node: CsiClient;
  const kubelet = () => path.join(dir, 'kubelet');

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rw-csi-node-'));
    await fs.writeFile(path.join(dir, 'admin'), ADMIN + '\n', { mode: 0o600 });
    collector = await startRewind(['collector', '--data', path.join(dir, 'collector'), '--grpc', `unix:${path.join(dir, 'collector.sock')}`, '--http', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'admin'), '--allow-plaintext']);
    api = new CollectorApi({ address: `unix:${path.join(dir, 'collector.sock')}`, allowPlaintext: true });
    driver = await startCsiProcess(dir, NODE);
    ctl = csiClient(driver.endpoint, 'Controller');
    node = csiClient(driver.endpoint, 'Node');
  });

  afterAll(async () => {
    ctl?.close();
    node?.close();
    await driver?.proc.stop();
    await cleanUpCsiHost(dir);
    api?.close();
    await collector?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A PV of the Rewind StorageClass (WaitForFirstConsumer: the scheduler picked NODE), registered on the collector as the controller does. */
  async function provision(block: boolean, again?: string) {
    const name = again ?? `pvc-${randomUUID()}`;
    expect((await api.registerVolume(ADMIN, name, BigInt(SIZE), TOKEN)).created).toBe(again === undefined);
    const capability = { access_mode: { mode: 'SINGLE_NODE_WRITER' }, ...(block ? { block: {} } : { mount: { fs_type: 'ext4', mount_flags: [] } }) };
    const created = await ctl.CreateVolume({
      name,
      capacity_range: { required_bytes: String(SIZE) },
      volume_capabilities: [capability],
      parameters: { collector: `unix:${path.join(dir, 'collector.sock')}`, collectorPlaintext: 'true', durability: 'flush-sync', 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'default', 'csi.storage.k8s.io/pv/name': name },
      accessibility_requirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: NODE } }], preferred: [{ segments: { [TOPOLOGY_KEY]: NODE } }] },
    });
    const vol = created.volume;
    expect(vol).toMatchObject({ volume_id: name, capacity_bytes: String(SIZE), accessible_topology: [{ segments: { [TOPOLOGY_KEY]: NODE } }] });
    const podUid = randomUUID();
    // kubelet's paths: the staging dir named by the sha256 of the volume handle, the pod's target dir.
    const staging = path.join(kubelet(), 'plugins/kubernetes.io/csi', 'cdp.rewind.dev', sha(Buffer.from(name)), 'globalmount');
    const target = block
      ? path.join(kubelet(), 'plugins/kubernetes.io/csi/volumeDevices/publish', name, podUid)
      : path.join(kubelet(), 'pods', podUid, 'volumes/kubernetes.io~csi', name, 'mount');
    await fs.mkdir(staging, { recursive: true });
    await fs.mkdir(path.dirname(target), { recursive: true });
    const stageReq = { volume_id: name, publish_context: {}, staging_target_path: staging, volume_capability: capability, secrets: { token: TOKEN }, volume_context: vol.volume_context };
    const publishReq = {
      volume_id: name, publish_context: {}, staging_target_path: staging, target_path: target, volume_capability: capability, readonly: false,
      volume_context: { ...vol.volume_context, 'csi.storage.k8s.io/pod.name': 'app-0', 'csi.storage.k8s.io/pod.namespace': 'default', 'csi.storage.k8s.io/pod.uid': podUid, 'csi.storage.k8s.io/serviceAccount.name': 'default', 'csi.storage.k8s.io/ephemeral': 'false' },
    };
    return { name, staging, target, stageReq, publishReq, paths: volumePaths(driver.stateDir, name) };
  }

  async function markOnCollector(controlSocket: string, volume: string, name: string): Promise<void> {
    await postMark(controlSocket, name);
    // The mark is a journal record: on the collector once shipped after the writes before it.
    for (let i = 0; i < 200; i++) {
      if ((await api.listMarks(volume, TOKEN)).some((m) => m.name === name)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`mark ${name} did not reach the collector in 20 s`);
  }

  it('mounts a fresh ext4 whose writes reach the collector: the device at a mark restores byte for byte, across a kill -9 of the plugin', async () => {
    const v = await provision(false);
    // Two at once on one volume (kubelet retrying a call that timed out): one runs, the other is ABORTED.
    const both = await Promise.allSettled([node.NodeStageVolume(v.stageReq), node.NodeStageVolume(v.stageReq)]);
    expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = both.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 10 /* ABORTED */ });
    expect(refused.reason.details).toMatch(/NodeStageVolume is still in progress on .*; retry NodeStageVolume once it finishes/);
    // Called again (kubelet retries after a timeout): nothing more to do.
    await node.NodeStageVolume(v.stageReq);
    await node.NodePublishVolume(v.publishReq);
    expect((await peer('findmnt', ['-n', '-o', 'FSTYPE', v.target])).trim()).toBe('ext4');

    const first = await writeTree(v.target, 1);
    await peer('sync', []);
    // Frozen while the device is hashed and the mark taken: nothing (journal commit,
    // lazy init) may write between the two.
    await peer('fsfreeze', ['-f', v.target]);
    let atMark: string;
    try {
      atMark = await sha256Export(`nbd+unix:///?socket=${v.paths.nbdSocket}`);
      await markOnCollector(v.paths.controlSocket, v.name, 'after-first-tree');
    } finally {
      await peer('fsfreeze', ['-u', v.target]);
    }

    // The plugin dies; the data path, nbdfuse and the mount are not its children to lose.
    driver.proc.child.kill('SIGKILL');
    await new Promise((r) => driver.proc.child.once('exit', r));
    const second = await writeTree(v.target, 2);
    await peer('sync', []);
    ctl.close();
    node.close();
    driver = await startCsiProcess(dir, NODE);
    ctl = csiClient(driver.endpoint, 'Controller');
    node = csiClient(driver.endpoint, 'Node');
    expect(JSON.parse(JSON.stringify(driver.proc.info.staged))).toEqual([{ volume: v.name, healthy: true }]);
    await node.NodeStageVolume(v.stageReq);
    await node.NodePublishVolume(v.publishReq);
    const stats = await node.NodeGetVolumeStats({ volume_id: v.name, volume_path: v.target });
    expect((await node.NodeGetVolumeHealth({ volume_id: v.name, volume_publish_path: v.target, staging_target_path: v.staging })).volume_health).toEqual({ volume_id: v.name, health_statuses: [] });
    expect(Number(stats.usage.find((u: { unit: string }) => u.unit === 'BYTES').used)).toBeGreaterThan(0);

    for (const [rel, h] of [...first, ...second]) expect(sha(await fs.readFile(path.join(v.target, rel))), rel).toBe(h);
    const now = await sha256Export(`nbd+unix:///?socket=${v.paths.nbdSocket}`);
    expect(now).not.toBe(atMark);

    const restored = path.join(dir, 'restored.img');
    await api.restoreToFile(v.name, TOKEN, { mark: 'after-first-tree' }, restored);
    expect(await sha256File(restored)).toBe(atMark);
    await peer('e2fsck', ['-fn', restored]);

    await node.NodeUnpublishVolume({ volume_id: v.name, target_path: v.target });
    await node.NodeUnstageVolume({ volume_id: v.name, staging_target_path: v.staging });
    await node.NodeUnstageVolume({ volume_id: v.name, staging_target_path: v.staging });
    expect(await leftovers(dir)).toEqual([]);
    // Unstaged cleanly: the data path flushed and exited, and the image it left is a clean ext4 equal to what the collector holds now.
    await peer('e2fsck', ['-fn', v.paths.backing]);
    const latest = path.join(dir, 'latest.img');
    await api.restoreToFile(v.name, TOKEN, { now: true }, latest);
    expect(await sha256File(latest)).toBe(await sha256File(v.paths.backing));

    await ctl.DeleteVolume({ volume_id: v.name });
    await expect(fs.stat(v.paths.dir)).rejects.toThrow();
  });

  it('a volume whose node lost its backing file is filled from the collector before its first use, and fsck finds it clean', async () => {
    const v = await provision(false);
    await node.NodeStageVolume(v.stageReq);
    await node.NodePublishVolume(v.publishReq);
    const files = await writeTree(v.target, 3);
    await peer('sync', []);
    await node.NodeUnpublishVolume({ volume_id: v.name, target_path: v.target });
    await node.NodeUnstageVolume({ volume_id: v.name, staging_target_path: v.staging });
    // What the node held at unstage is what the collector holds now.
    const latest = path.join(dir, 'latest-lost.img');
    await api.restoreToFile(v.name, TOKEN, { now: true }, latest);
    expect(await sha256File(latest)).toBe(await sha256File(v.paths.backing));
    // The node's copy is gone (DeleteVolume frees it here; a lost node loses it); the history is on the collector.
    await ctl.DeleteVolume({ volume_id: v.name });
    await expect(fs.stat(v.paths.backing)).rejects.toThrow();

    const w = await provision(false, v.name);
    await node.NodeStageVolume(w.stageReq);
    // The data path pulled the image before serving (the mount that follows rewrites the superblock, so compare the log, then the files).
    expect(await fs.readFile(path.join(w.paths.dir, 'serve.log'), 'utf8')).toMatch(/"msg":"volume filled from the collector".*"kind":"image"/);
    await node.NodePublishVolume(w.publishReq);
    for (const [rel, h] of files) expect(sha(await fs.readFile(path.join(w.target, rel))), rel).toBe(h);
    await node.NodeUnpublishVolume({ volume_id: w.name, target_path: w.target });
    await node.NodeUnstageVolume({ volume_id: w.name, staging_target_path: w.staging });
    await peer('e2fsck', ['-fn', w.paths.backing]);
    expect(await leftovers(dir)).toEqual([]);
    await ctl.DeleteVolume({ volume_id: w.name });
  });

  it('exposes the device for volumeMode Block: qemu-io writes through it, and the mark restores the device as it was', async () => {
    const v = await provision(true);
    await node.NodeStageVolume(v.stageReq);
    await node.NodePublishVolume(v.publishReq);
    expect((await fs.stat(v.target)).isFile() || (await fs.stat(v.target)).isBlockDevice()).toBe(true);
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 1M', '-c', 'write -P 0xcd 64M 512k', '-c', 'flush', v.target]);
    const atMark = await sha256Export(`nbd+unix:///?socket=${v.paths.nbdSocket}`);
    const expected = Buffer.alloc(SIZE);
    expected.fill(0xab, 0, 1 << 20);
    expected.fill(0xcd, 64 << 20, (64 << 20) + (512 << 10));
    expect(atMark).toBe(sha(expected));
    await markOnCollector(v.paths.controlSocket, v.name, 'after-qemu');
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0xef 0 4M', '-c', 'flush', v.target]);
    await peer('qemu-io', ['-f', 'raw', '-c', 'read -P 0xef 0 4M', v.target]);

    const restored = path.join(dir, 'restored-block.img');
    await api.restoreToFile(v.name, TOKEN, { mark: 'after-qemu' }, restored);
    expect(await sha256File(restored)).toBe(atMark);

    await node.NodeUnpublishVolume({ volume_id: v.name, target_path: v.target });
    await expect(fs.stat(v.target)).rejects.toThrow();
    await node.NodeUnstageVolume({ volume_id: v.name, staging_target_path: v.staging });
    expect(await leftovers(dir)).toEqual([]);
    await ctl.DeleteVolume({ volume_id: v.name });
  });
});
