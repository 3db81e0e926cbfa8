import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { expect } from 'vitest';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import { startRewind, type RewindProcess } from '../helpers/rewind-process.js';
import type { ControlPlane } from './control-plane.js';
import { applyCrds, eventually, ROOT } from './kube-helpers.js';

export const CONTROLLER_NAMESPACE = 'rewind-system';
export const CONTROLLER_SA = 'rewind-controller';

/** The controller's RBAC as the chart ships it (charts/rewind/files/controller-rbac.yaml). */
export function controllerRbac(): { clusterRules: k8s.V1PolicyRule[]; leaseRules: k8s.V1PolicyRule[] } {
  return k8s.loadYaml(fs.readFileSync(path.join(ROOT, 'charts/rewind/files/controller-rbac.yaml'), 'utf8'));
}

/**
 * Binds exactly the chart's controller rules to ServiceAccount rewind-system/rewind-controller
 * and returns a kubeconfig with a token the API server issued for it.
 */
export async function controllerKubeconfig(cp: ControlPlane): Promise<string> {
  const kc = cp.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const { clusterRules, leaseRules } = controllerRbac();
  await core.createNamespace({ body: { metadata: { name: CONTROLLER_NAMESPACE } } });
  await core.createNamespacedServiceAccount({ namespace: CONTROLLER_NAMESPACE, body: { metadata: { name: CONTROLLER_SA } } });
  const subjects = [{ kind: 'ServiceAccount', name: CONTROLLER_SA, namespace: CONTROLLER_NAMESPACE }];
  await rbac.createClusterRole({ body: { metadata: { name: 'rewind-controller' }, rules: clusterRules } });
  await rbac.createClusterRoleBinding({ body: { metadata: { name: 'rewind-controller' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'rewind-controller' }, subjects } });
  await rbac.createNamespacedRole({ namespace: CONTROLLER_NAMESPACE, body: { metadata: { name: 'rewind-controller-leases' }, rules: leaseRules } });
  await rbac.createNamespacedRoleBinding({ namespace: CONTROLLER_NAMESPACE, body: { metadata: { name: 'rewind-controller-leases' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'rewind-controller-leases' }, subjects } });
  return cp.serviceAccountKubeconfig(CONTROLLER_NAMESPACE, CONTROLLER_SA, { expirationSeconds: 7200 });
}

export interface RewindStack {
  collector: RewindProcess;
  collectorAddress: string;
  adminTokenFile: string;
  adminToken: string;
  api: CollectorApi;
  controllerKubeconfig: string;
  startController(extra?: string[]): Promise<RewindProcess>;
  stop(): Promise<void>;
}

/** CRDs applied, a `rewind collector` with an admin token, and a way to start controllers under the chart's RBAC. */
export async function startRewindStack(cp: ControlPlane, dir: string): Promise<RewindStack> {
  await applyCrds(cp);
  const adminToken = crypto.randomBytes(24).toString('hex');
  const adminTokenFile = path.join(dir, 'admin.token');
  fs.writeFileSync(adminTokenFile, adminToken + '\n', { mode: 0o600 });
  const collector = await startRewind(['collector', '--data', path.join(dir, 'collector'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--admin-token-file', adminTokenFile, '--allow-plaintext']);
  const collectorAddress = collector.info.grpc!;
  const api = new CollectorApi({ address: collectorAddress, allowPlaintext: true });
  const kubeconfig = await controllerKubeconfig(cp);
  const controllers: RewindProcess[] = [];
  return {
    collector,
    collectorAddress,
    adminTokenFile,
    adminToken,
    api,
    controllerKubeconfig: kubeconfig,
    async startController(extra = []) {
      const c = await startRewind([
        'controller', '--kubeconfig', kubeconfig, '--collector', collectorAddress, '--collector-admin-token-file', adminTokenFile, '--collector-plaintext',
        '--lease-namespace', CONTROLLER_NAMESPACE, '--lease-duration', '4s', '--renew-deadline', '3s', '--retry-period', '500ms', '--resync', '1s',
        ...extra,
      ]);
      controllers.push(c);
      return c;
    },
    async stop() {
      for (const c of controllers) await c.stop();
      api.close();
      await collector.stop();
    },
  };
}

/** The whole object as the API server has it, through kubectl (admin). */
export async function getJson<T = Record<string, any>>(cp: ControlPlane, resource: string, namespace: string): Promise<T> {
  const r = await cp.kubectl(['get', resource, '-n', namespace, '-o', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** Waits until `kubectl get` of the resource satisfies `ok`, returning the object. */
export function waitFor<T = Record<string, any>>(cp: ControlPlane, resource: string, namespace: string, what: string, ok: (o: T) => boolean, timeoutMs = 60_000): Promise<T> {
  return eventually(`${resource}: ${what}`, timeoutMs, async () => {
    const r = await cp.kubectl(['get', resource, '-n', namespace, '-o', 'json']);
    if (r.code !== 0) return undefined;
    const o = JSON.parse(r.stdout) as T;
    return ok(o) ? o : undefined;
  });
}
