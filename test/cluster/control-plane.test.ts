import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from './control-plane.js';

// The harness every Kubernetes test stands on: if any of this fails, the rest means nothing.
describe('the test control plane', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane();
  }, 300_000);
  afterAll(async () => {
    await cp?.stop();
  });

  it('is a real kube-apiserver of the pinned release, reached by the real kubectl', async () => {
    const r = await cp.kubectl(['version', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    expect(v.serverVersion.gitVersion).toMatch(/^v1\.3[4-9]\.\d+$/);
    expect(v.clientVersion.gitVersion).toBe(v.serverVersion.gitVersion);
  });

  it('serves @kubernetes/client-node with the admin token', async () => {
    const core = cp.kubeConfig().makeApiClient(k8s.CoreV1Api);
    const ns = await core.listNamespace();
    expect(ns.items.map((n) => n.metadata?.name)).toEqual(expect.arrayContaining(['default', 'kube-system']));
  });

  it('issues ServiceAccount tokens that RBAC authorizes rule by rule', async () => {
    const kc = cp.kubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespace({ body: { metadata: { name: 'rbac-check' } } });
    await core.createNamespacedServiceAccount({ namespace: 'rbac-check', body: { metadata: { name: 'reader' } } });
    const saConfig = await cp.serviceAccountKubeconfig('rbac-check', 'reader');

    const denied = await cp.kubectl(['get', 'configmaps', '-n', 'rbac-check'], { kubeconfig: saConfig });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/forbidden/i);

    await rbac.createNamespacedRole({
      namespace: 'rbac-check',
      body: { metadata: { name: 'read-cm' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: 'rbac-check',
      body: {
        metadata: { name: 'read-cm' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-cm' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'rbac-check' }],
      },
    });
    const allowed = await cp.kubectl(['get', 'configmaps', '-n', 'rbac-check', '-o', 'name'], { kubeconfig: saConfig });
    expect(allowed.code, allowed.stderr).toBe(0);
    const stillDenied = await cp.kubectl(['auth', 'can-i', 'delete', 'configmaps', '-n', 'rbac-check'], { kubeconfig: saConfig });
    expect(stillDenied.stdout.trim()).toBe('no');
  });

  it('runs kube-controller-manager: default ServiceAccounts appear and namespaces finish deleting', async () => {
    const core = cp.kubeConfig().makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'kcm-check' } } });
    const sa = await cp.kubectl(['wait', '--for=create', 'serviceaccount/default', '-n', 'kcm-check', '--timeout=60s']);
    expect(sa.code, sa.stderr).toBe(0);
    await core.deleteNamespace({ name: 'kcm-check' });
    const gone = await cp.kubectl(['wait', '--for=delete', 'namespace/kcm-check', '--timeout=60s']);
    expect(gone.code, gone.stderr).toBe(0);
  });

  it('stops every process it started, by PID', async () => {
    const { etcd, apiserver, controllerManager } = cp.pids;
    await cp.stop();
    for (const pid of [etcd, apiserver, controllerManager!]) {
      expect(() => process.kill(pid, 0), `pid ${pid} still alive`).toThrow();
    }
  });
});
