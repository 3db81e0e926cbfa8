import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csiClient, startCsiProcess, type CsiClient } from '../helpers/csi-driver.js';
import type { RewindProcess } from '../helpers/rewind-process.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { eventually } from './kube-helpers.js';
import { getJson } from './rewind-stack.js';

/**
 * The real external-provisioner (v6.4.0, built by build-tools.sh) between the real API
 * server + kube-controller-manager (PV binder) and the driver's controller socket. The
 * local model's way to run it: one per node (--node-deployment), so the node that holds a
 * volume's sparse file is the one that creates and deletes it. No kubelet or scheduler
 * here: the Node and its CSINode (node-driver-registrar's job) are created by the test,
 * and the PVC carries the selected-node annotation the scheduler would set.
 */
const NODE = 'node-a';
const KEY = 'topology.cdp.rewind.dev/node';

describe('external-provisioner against the real API server and the driver', () => {
  let cp: ControlPlane;
  let dir: string;
  let driver: { proc: RewindProcess; endpoint: string; stateDir: string };
  let ctl: CsiClient;
  let provisioner: ChildProcess | undefined;
  const provLog = () => path.join(dir, 'csi-provisioner.log');
  const tailLog = () => fs.readFileSync(provLog(), 'utf8').slice(-3000);

  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: true });
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rw-csi-prov-'));
    driver = await startCsiProcess(dir, NODE);
    ctl = csiClient(driver.endpoint, 'Controller');
    const apply = async (obj: object) => {
      const r = await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
      expect(r.code, r.stderr).toBe(0);
    };
    await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { [KEY]: NODE, 'kubernetes.io/hostname': NODE } } });
    await apply({ apiVersion: 'storage.k8s.io/v1', kind: 'CSINode', metadata: { name: NODE }, spec: { drivers: [{ name: 'cdp.rewind.dev', nodeID: NODE, topologyKeys: [KEY] }] } });
    await apply({ apiVersion: 'storage.k8s.io/v1', kind: 'CSIDriver', metadata: { name: 'cdp.rewind.dev' }, spec: { attachRequired: false, podInfoOnMount: true, volumeLifecycleModes: ['Persistent'] } });
    await apply({
      apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'rewind' }, provisioner: 'cdp.rewind.dev',
      volumeBindingMode: 'WaitForFirstConsumer', reclaimPolicy: 'Delete', allowVolumeExpansion: false,
      parameters: {
        collector: 'rewind-collector.rewind-system.svc:7070', durability: 'flush-sync',
        'csi.storage.k8s.io/fstype': 'ext4',
        'csi.storage.k8s.io/node-stage-secret-name': 'rewind-token-${pvc.name}',
        'csi.storage.k8s.io/node-stage-secret-namespace': '${pvc.namespace}',
      },
    });
    const bin = path.join(cp.bin, 'csi-provisioner');
    if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: test/cluster/build-tools.sh builds it (family csi-provisioner)`);
    const log = fs.openSync(provLog(), 'a');
    provisioner = spawn(bin, [
      `--csi-address=${driver.endpoint}`, `--kubeconfig=${cp.kubeconfig}`, '--leader-election=false', '--extra-create-metadata',
      '--node-deployment', '--timeout=60s', '--retry-interval-start=500ms', '--retry-interval-max=5s', '--v=4',
    ], { env: { ...process.env, NODE_NAME: NODE }, stdio: ['ignore', log, log] });
    fs.closeSync(log);
  });

  afterAll(async () => {
    if (provisioner && provisioner.exitCode === null) {
      const gone = new Promise((r) => provisioner!.once('exit', r));
      provisioner.kill('SIGTERM');
      await gone;
    }
    ctl?.close();
    await driver?.proc.stop();
    await cp?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('binds a PVC of the Rewind StorageClass to a PV the driver created on the selected node, and deleting the PVC deletes the volume', async () => {
    const r = await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1', kind: 'PersistentVolumeClaim',
        metadata: { name: 'data', namespace: 'default', annotations: { 'volume.kubernetes.io/selected-node': NODE } },
        spec: { storageClassName: 'rewind', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '100Mi' } } },
      }),
    });
    expect(r.code, r.stderr).toBe(0);
    const pvc = await eventually('the PVC is Bound', 90_000, async () => {
      const o = await getJson(cp, 'pvc/data', 'default');
      return o.status?.phase === 'Bound' ? o : undefined;
    }).catch((e) => {
      throw new Error(`${(e as Error).message}\ncsi-provisioner log:\n${tailLog()}`);
    });
    const pvName: string = pvc.spec.volumeName;
    expect(pvName).toBe(`pvc-${pvc.metadata.uid}`);
    const pv = await getJson(cp, `pv/${pvName}`, 'default');
    expect(pv.spec.csi).toMatchObject({
      driver: 'cdp.rewind.dev',
      volumeHandle: pvName,
      fsType: 'ext4',
      nodeStageSecretRef: { name: 'rewind-token-data', namespace: 'default' },
      volumeAttributes: { collector: 'rewind-collector.rewind-system.svc:7070', durability: 'flush-sync', 'cdp.rewind.dev/size': String(100 << 20), 'cdp.rewind.dev/node': NODE },
    });
    expect(pv.spec.capacity.storage).toBe('100Mi');
    expect(pv.spec.nodeAffinity.required.nodeSelectorTerms).toEqual([{ matchExpressions: [{ key: KEY, operator: 'In', values: [NODE] }] }]);
    const listed = await ctl.ListVolumes({});
    expect(listed.entries.map((e: { volume: { volume_id: string } }) => e.volume.volume_id)).toEqual([pvName]);

    expect((await cp.kubectl(['delete', 'pvc/data', '-n', 'default', '--wait=true'])).code).toBe(0);
    await eventually('the PV is deleted', 90_000, async () => ((await cp.kubectl(['get', `pv/${pvName}`])).code !== 0 ? true : undefined)).catch((e) => {
      throw new Error(`${(e as Error).message}\ncsi-provisioner log:\n${tailLog()}`);
    });
    expect((await ctl.ListVolumes({})).entries).toEqual([]);
  });
});
