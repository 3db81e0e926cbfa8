import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import { startRewind } from '../helpers/rewind-process.js';
import { CHART, DEPLOY_FILE, ROOT, helm, renderDeploy, setArgs, template } from './chart-render.js';
import { find, normalizeCanIList, parseObjects, podSpecOf, securityViolations, type KubeObject } from './chart-objects.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { applyCrds, eventually } from './kube-helpers.js';
import { controllerRbac } from './rewind-stack.js';

/** Values that move every knob a user is likely to turn. */
const NON_DEFAULT: Record<string, string | number | boolean> = {
  'image.repository': 'registry.example/rewind',
  'image.tag': '1.2.3',
  'controller.replicas': 3,
  'controller.resources.limits.memory': '1Gi',
  'collector.replicas': 3,
  'collector.resources.requests.cpu': '250m',
  'collector.resources.limits.memory': '8Gi',
  'collector.persistence.size': '100Gi',
  'collector.persistence.storageClassName': 'fast-ssd',
  'collector.retention': '72h',
  'adminToken.existingSecret': 'my-admin-token',
  'tls.existingSecrets.collector': 'my-collector-tls',
  'tls.existingSecrets.controller': 'my-controller-tls',
  'serviceMonitor.enabled': true,
  'serviceMonitor.labels.release': 'prometheus',
  'collector.networkPolicy.enabled': true,
  'collector.networkPolicy.httpFrom[0].namespaceSelector.matchLabels.team': 'monitoring',
};

const PLAINTEXT_SINGLE: Record<string, string | number | boolean> = {
  'tls.enabled': false,
  'controller.replicas': 1,
  'controller.leaderElection.enabled': false,
  'collector.podDisruptionBudget.enabled': false,
};

const EXPECTED_RBAC = path.join(ROOT, 'test', 'cluster', 'expected-rbac');

const container = (o: KubeObject, name: string) => podSpecOf(o).containers.find((c: any) => c.name === name);
const volumeSecret = (o: KubeObject, volume: string) => podSpecOf(o).volumes.find((v: any) => v.name === volume)?.secret?.secretName;

describe('charts/rewind rendered by helm', () => {
  it('passes helm lint with the default values and with non-default ones', () => {
    for (const values of [{}, NON_DEFAULT, PLAINTEXT_SINGLE]) {
      const r = helm(['lint', '--strict', CHART, '--namespace', 'rewind-system', ...setArgs(values)]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('0 chart(s) failed');
    }
  });

  it('renders the controller, the collector and their RBAC with the default values', () => {
    const objects = parseObjects(template());
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        'ClusterRole/rewind-system-rewind-controller',
        'ClusterRoleBinding/rewind-system-rewind-controller',
        'Deployment/rewind-controller',
        'PodDisruptionBudget/rewind-collector',
        'Role/rewind-controller-leases',
        'RoleBinding/rewind-controller-leases',
        'Secret/rewind-admin-token',
        'Secret/rewind-collector-tls',
        'Secret/rewind-controller-tls',
        'Secret/rewind-shipper-tls',
        'Service/rewind-collector',
        'Service/rewind-collector-http',
        'ServiceAccount/rewind-collector',
        'ServiceAccount/rewind-controller',
        'StatefulSet/rewind-collector',
      ].sort(),
    );
    for (const o of objects) if (!o.kind.startsWith('Cluster')) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('rewind-system');

    const deploy = find(objects, 'Deployment');
    expect(deploy.spec.replicas).toBe(2);
    const ctl = container(deploy, 'controller');
    expect(ctl.args).toEqual(
      expect.arrayContaining([
        'controller',
        '--collector=rewind-collector-0.rewind-collector.rewind-system.svc:9443',
        '--collector-admin-token-file=/var/run/rewind/admin-token/token',
        '--collector-tls-dir=/var/run/rewind/tls',
        '--leader-elect',
        '--lease-namespace=rewind-system',
        '--identity=$(POD_NAME)',
      ]),
    );
    // The controller serves no health endpoint: no probe pretends it does.
    expect(ctl.livenessProbe).toBeUndefined();
    expect(ctl.readinessProbe).toBeUndefined();
    expect(volumeSecret(deploy, 'tls')).toBe('rewind-controller-tls');
    expect(volumeSecret(deploy, 'admin-token')).toBe('rewind-admin-token');
    expect(podSpecOf(deploy).serviceAccountName).toBe('rewind-controller');

    const sts = find(objects, 'StatefulSet');
    expect(sts.spec.replicas).toBe(1);
    expect(sts.spec.serviceName).toBe('rewind-collector');
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('20Gi');
    const col = container(sts, 'collector');
    expect(col.args).toEqual(['collector', '--data=/var/lib/rewind', '--grpc=0.0.0.0:9443', '--http=0.0.0.0:8080', '--admin-token-file=/var/run/rewind/admin-token/token', '--tls-dir=/var/run/rewind/tls', '--retention=24h']);
    expect(col.livenessProbe.httpGet.path).toBe('/healthz');
    expect(col.readinessProbe.httpGet.path).toBe('/readyz');
    expect(col.volumeMounts.find((m: any) => m.name === 'data').mountPath).toBe('/var/lib/rewind');
    expect(podSpecOf(sts).automountServiceAccountToken).toBe(false);
    expect(find(objects, 'Service', 'rewind-collector').spec.clusterIP).toBe('None');
    expect(find(objects, 'PodDisruptionBudget').spec.maxUnavailable).toBe(1);
  });

  it('renders the RBAC rules of files/controller-rbac.yaml and nothing else, and binds none to the collector', () => {
    const objects = parseObjects(template());
    const { clusterRules, leaseRules } = controllerRbac();
    expect(find(objects, 'ClusterRole').rules).toEqual(clusterRules);
    expect(find(objects, 'Role').rules).toEqual(leaseRules);
    const subjects = objects.filter((o) => o.kind.endsWith('Binding')).flatMap((o) => o.subjects);
    expect(subjects).toEqual([
      { kind: 'ServiceAccount', name: 'rewind-controller', namespace: 'rewind-system' },
      { kind: 'ServiceAccount', name: 'rewind-controller', namespace: 'rewind-system' },
    ]);
    expect(find(objects, 'ServiceAccount', 'rewind-collector').automountServiceAccountToken).toBe(false);
  });

  it('generates one CA for mTLS: the collector certificate covers every collector name, the clients chain to the same CA', () => {
    const objects = parseObjects(template());
    const cert = (name: string, key: string) => Buffer.from(find(objects, 'Secret', name).data[key], 'base64').toString();
    const ca = new crypto.X509Certificate(cert('rewind-collector-tls', 'ca.crt'));
    for (const s of ['rewind-collector-tls', 'rewind-controller-tls', 'rewind-shipper-tls']) {
      const c = new crypto.X509Certificate(cert(s, 'tls.crt'));
      expect(c.verify(ca.publicKey), s).toBe(true);
      expect(cert(s, 'ca.crt')).toBe(cert('rewind-collector-tls', 'ca.crt'));
      // The key is the certificate's.
      expect(c.checkPrivateKey(crypto.createPrivateKey(cert(s, 'tls.key'))), s).toBe(true);
    }
    const server = new crypto.X509Certificate(cert('rewind-collector-tls', 'tls.crt'));
    expect(server.checkHost('rewind-collector-0.rewind-collector.rewind-system.svc')).toBeTruthy();
    expect(server.checkHost('rewind-collector-2.rewind-collector.rewind-system.svc.cluster.local')).toBeTruthy();
    expect(server.checkHost('rewind-collector.other.svc')).toBeUndefined();
    const token = Buffer.from(find(objects, 'Secret', 'rewind-admin-token').data.token, 'base64').toString();
    expect(token).toMatch(/^[A-Za-z0-9]{48}$/);
  });

  it("the generated certificates carry mutual TLS: the controller's and a shipper's reach the collector, others do not", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-chart-tls-'));
    const objects = parseObjects(template());
    const secret = (name: string) => Object.fromEntries(Object.entries(find(objects, 'Secret', name).data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
    const tlsDir = path.join(dir, 'tls');
    fs.mkdirSync(tlsDir);
    for (const [k, v] of Object.entries(secret('rewind-collector-tls'))) fs.writeFileSync(path.join(tlsDir, k), v, { mode: 0o600 });
    const admin = secret('rewind-admin-token').token!.toString();
    fs.writeFileSync(path.join(dir, 'admin.token'), admin, { mode: 0o600 });
    const collector = await startRewind(['collector', '--data', path.join(dir, 'data'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'admin.token'), '--tls-dir', tlsDir]);
    // The name the controller dials in the cluster (its --collector), checked against the certificate.
    const serverName = 'rewind-collector-0.rewind-collector.rewind-system.svc';
    const client = (tls: { ca: Buffer; cert?: Buffer; key?: Buffer; serverName?: string }) => new CollectorApi({ address: collector.info.grpc!, tls: { serverName, ...tls } });
    const asSecret = (name: string, from = objects) => {
      const d = find(from, 'Secret', name).data as Record<string, string>;
      const b = (k: string) => Buffer.from(d[k]!, 'base64');
      return { ca: b('ca.crt'), cert: b('tls.crt'), key: b('tls.key') };
    };
    const attempt = async (api: CollectorApi, call: (api: CollectorApi) => Promise<unknown>) => {
      try {
        await call(api);
        return 'ok';
      } catch (err) {
        return (err as Error).message;
      } finally {
        api.close();
      }
    };
    try {
      const controller = client(asSecret('rewind-controller-tls'));
      expect(await attempt(controller, (a) => a.registerVolume(admin, 'chart-tls', 1n << 20n, 'v'.repeat(32)))).toBe('ok');
      expect(await attempt(client(asSecret('rewind-shipper-tls')), (a) => a.listVolumes())).toBe('ok');
      // No client certificate; a certificate of another release's CA; the right CA but another name.
      expect(await attempt(client({ ca: asSecret('rewind-controller-tls').ca }), (a) => a.listVolumes())).toMatch(/certificate required/);
      const other = parseObjects(template());
      expect(await attempt(client({ ...asSecret('rewind-controller-tls', other), ca: asSecret('rewind-controller-tls').ca }), (a) => a.listVolumes())).toMatch(/No connection established/);
      expect(await attempt(client({ ...asSecret('rewind-controller-tls'), serverName: 'rewind-collector.elsewhere.svc' }), (a) => a.listVolumes())).toMatch(/does not match certificate's altnames/);
    } finally {
      await collector.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders non-default values: replicas, resources, storage, existing Secrets, a ServiceMonitor, a NetworkPolicy', () => {
    const objects = parseObjects(template({ values: NON_DEFAULT }));
    // Existing Secrets given: the chart makes none of its own.
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const deploy = find(objects, 'Deployment');
    expect(deploy.spec.replicas).toBe(3);
    expect(container(deploy, 'controller').resources.limits.memory).toBe('1Gi');
    expect(container(deploy, 'controller').image).toBe('registry.example/rewind:1.2.3');
    expect(volumeSecret(deploy, 'tls')).toBe('my-controller-tls');
    expect(volumeSecret(deploy, 'admin-token')).toBe('my-admin-token');
    const sts = find(objects, 'StatefulSet');
    expect(sts.spec.replicas).toBe(3);
    expect(container(sts, 'collector').resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '8Gi' } });
    expect(container(sts, 'collector').args).toContain('--retention=72h');
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ storageClassName: 'fast-ssd', resources: { requests: { storage: '100Gi' } } });
    expect(volumeSecret(sts, 'tls')).toBe('my-collector-tls');
    const sm = find(objects, 'ServiceMonitor');
    expect(sm.metadata.labels?.release).toBe('prometheus');
    expect(sm.spec.endpoints).toEqual([{ port: 'http', path: '/metrics', interval: '30s' }]);
    const np = find(objects, 'NetworkPolicy');
    expect(np.spec.ingress).toEqual([
      { ports: [{ protocol: 'TCP', port: 9443 }] },
      { ports: [{ protocol: 'TCP', port: 8080 }], from: [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }] },
    ]);
    // The Service it selects exists with that port.
    const svc = objects.find((o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v))!;
    expect(svc.spec.ports.map((p: any) => p.name)).toContain('http');
  });

  it('renders plaintext and a single unelected controller only when asked', () => {
    const objects = parseObjects(template({ values: PLAINTEXT_SINGLE }));
    expect(objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name)).toEqual(['rewind-admin-token']);
    const ctl = container(find(objects, 'Deployment'), 'controller');
    expect(ctl.args).toEqual(expect.arrayContaining(['--collector-plaintext', '--no-leader-elect']));
    expect(ctl.args.join(' ')).not.toContain('tls');
    expect(container(find(objects, 'StatefulSet'), 'collector').args).toContain('--allow-plaintext');
    expect(objects.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
  });

  it.each([
    ['controller.replicas', { 'controller.replicas': 0 }, /controller\.replicas: Must be greater than or equal to 1/],
    ['collector.replicas', { 'collector.replicas': 'three' }, /collector\.replicas: Invalid type\. Expected: integer, given: string/],
    ['image.pullPolicy', { 'image.pullPolicy': 'Sometimes' }, /image\.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"/],
    ['an unknown top-level key', { replicas: 2 }, /\(root\): Additional property replicas is not allowed/],
    ['an unknown nested key', { 'collector.storage': '1Gi' }, /collector: Additional property storage is not allowed/],
    ['collector.retention', { 'collector.retention': 'a day' }, /collector\.retention: Does not match pattern/],
    ['controller.workers', { 'controller.workers': 65 }, /controller\.workers: Must be less than or equal to 64/],
    ['collector.grpcPort', { 'collector.grpcPort': 70000 }, /collector\.grpcPort: Must be less than or equal to 65535/],
    ['podSecurityContext.runAsNonRoot', { 'podSecurityContext.runAsNonRoot': false }, /podSecurityContext\.runAsNonRoot does not match: true/],
    ['podSecurityContext.runAsUser', { 'podSecurityContext.runAsUser': 0 }, /podSecurityContext\.runAsUser: Must be greater than or equal to 1/],
    ['tls.enabled', { 'tls.enabled': 'yes' }, /tls\.enabled: Invalid type\. Expected: boolean, given: string/],
    // Rules the schema cannot state; the templates refuse them, naming the key.
    ['csi.enabled', { 'csi.enabled': true }, /csi\.enabled: the CSI driver cdp\.rewind\.dev is not built yet/],
    ['csi.storageClass.create', { 'csi.storageClass.create': true }, /csi\.storageClass\.create: nothing provisions cdp\.rewind\.dev yet/],
    ['controller.leaderElection.enabled', { 'controller.replicas': 2, 'controller.leaderElection.enabled': false }, /controller\.leaderElection\.enabled: more than one controller replica needs leader election/],
    ['tls.existingSecrets', { 'tls.existingSecrets.collector': 'mine' }, /tls\.existingSecrets: give collector and controller together/],
  ] as const)('refuses a bad %s with a message naming it', (_what, values, message) => {
    const r = helm(['template', 'rewind', CHART, ...setArgs(values as Record<string, string | number | boolean>)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it('runs no container privileged or as root; every one has resources, a read-only root filesystem, no capabilities, seccomp', () => {
    for (const values of [{}, NON_DEFAULT, PLAINTEXT_SINGLE]) {
      const objects = parseObjects(template({ values }));
      expect(objects.filter((o) => podSpecOf(o)).length).toBeGreaterThanOrEqual(2);
      expect(securityViolations(objects)).toEqual([]);
      // A read-only root filesystem needs somewhere to write temporary files.
      for (const o of objects.filter((x) => podSpecOf(x))) {
        for (const c of podSpecOf(o).containers) expect(c.volumeMounts.map((m: any) => m.mountPath), `${o.kind}/${o.metadata.name}`).toContain('/tmp');
        expect(podSpecOf(o).volumes.find((v: any) => v.name === 'tmp').emptyDir).toBeDefined();
      }
    }
  });

  it('the checker sees what it must refuse (a privileged root container with no limits)', () => {
    const bad = parseObjects(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bad}
spec: {template: {spec: {containers: [{name: c, image: x, securityContext: {privileged: true, runAsUser: 0}}]}}}`);
    expect(securityViolations(bad)).toEqual(
      expect.arrayContaining([
        'DaemonSet/bad container c: privileged',
        expect.stringContaining('may run as root'),
        'DaemonSet/bad container c: root filesystem writable',
        'DaemonSet/bad container c: no resources.limits.memory',
      ]),
    );
  });

  it('deploy/rewind.yaml is what `npm run gen:deploy` renders now (run it after changing the chart)', () => {
    expect(fs.readFileSync(DEPLOY_FILE, 'utf8')).toBe(renderDeploy());
    const objects = parseObjects(fs.readFileSync(DEPLOY_FILE, 'utf8'));
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(objects[0]).toMatchObject({ kind: 'Namespace', metadata: { name: 'rewind-system' } });
    expect(securityViolations(objects)).toEqual([]);
  });

  // There is no Docker (or other container) engine on the test machines, so the image is
  // not built here: these checks read the Dockerfile. The kind suite builds and loads it
  // where an engine exists.
  it('the Dockerfile builds in stages and runs as a numeric non-root user, copying only files that exist', () => {
    const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const stages = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => m[2]);
    expect(stages).toEqual(['build', 'runtime']);
    expect(text).toMatch(/RUN npm ci\b/);
    expect(text).toMatch(/tsc -p tsconfig\.build\.json/);
    const runtime = text.slice(text.indexOf('AS runtime'));
    expect(runtime).toMatch(/^USER 10001:10001$/m);
    expect(runtime).not.toMatch(/npm (ci|install)/);
    const users = [...text.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBe('10001:10001');
    // The chart's pod securityContext runs the image's user.
    const values = fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8');
    expect(values).toMatch(/runAsUser: 10001/);
    for (const m of text.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) expect(fs.existsSync(path.join(ROOT, src)), `COPY ${src}`).toBe(true);
    }
    const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', 'dist', '.git']) expect(ignore).toContain(p);
  });
});

describe('charts/rewind on the real API server', () => {
  let cp: ControlPlane;
  let dir: string;
  const NS = 'rewind-chart';
  /** The default render, once: each render generates a new token and new certificates. */
  let rendered: string;

  const applyStdin = (args: string[], input: string) => cp.kubectl(['apply', ...args, '-f', '-'], { input });
  const canIList = async (namespace: string, sa: string, inNamespace: string) => {
    const kubeconfig = await cp.serviceAccountKubeconfig(namespace, sa);
    const r = await cp.kubectl(['auth', 'can-i', '--list', '-n', inNamespace], { kubeconfig });
    expect(r.code, r.stderr).toBe(0);
    return normalizeCanIList(r.stdout);
  };
  /** Compared with the checked-in file; REWIND_UPDATE_EXPECTED=1 rewrites it instead. */
  const expectRbac = (file: string, lines: string[]) => {
    const full = path.join(EXPECTED_RBAC, file);
    if (process.env.REWIND_UPDATE_EXPECTED === '1') fs.writeFileSync(full, lines.join('\n') + '\n');
    expect(lines, `${file} (REWIND_UPDATE_EXPECTED=1 rewrites it after a deliberate RBAC change)`).toEqual(normalizeCanIList(fs.readFileSync(full, 'utf8')));
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-chart-'));
    cp = await startControlPlane();
    await applyCrds(cp);
    const ns = await cp.kubectl(['create', 'namespace', NS]);
    expect(ns.code, ns.stderr).toBe(0);
    rendered = template({ namespace: NS });
  }, 300_000);
  afterAll(async () => {
    await cp?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('accepts every object of the default render in a server-side dry run, then for real', async () => {
    const dry = await applyStdin(['--dry-run=server'], rendered);
    expect(dry.code, dry.stderr).toBe(0);
    const objects = parseObjects(rendered);
    expect(dry.stdout.trim().split('\n')).toHaveLength(objects.length);
    expect(dry.stdout).toMatch(/\(server dry run\)/);
    const real = await applyStdin([], rendered);
    expect(real.code, real.stderr).toBe(0);
    for (const o of objects) {
      const r = await cp.kubectl(['get', `${o.kind}.${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}`.replace(/\.$/, ''), o.metadata.name, ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : []), '-o', 'name']);
      expect(r.code, `${o.kind}/${o.metadata.name}: ${r.stderr}`).toBe(0);
    }
  });

  it('accepts every object of a non-default render, then for real (the ServiceMonitor only renders: it needs the Prometheus Operator CRD)', async () => {
    const namespace = 'rewind-custom';
    expect((await cp.kubectl(['create', 'namespace', namespace])).code).toBe(0);
    const objects = parseObjects(template({ release: 'custom', namespace, values: NON_DEFAULT }));
    expect(objects.some((o) => o.kind === 'ServiceMonitor')).toBe(true);
    // monitoring.coreos.com/v1 ServiceMonitor is a CRD of the Prometheus Operator, which
    // this control plane does not have; the API server would answer "no matches for kind".
    // Its shape is checked in the render test above.
    const applicable = objects.filter((o) => o.kind !== 'ServiceMonitor');
    const input = applicable.map((o) => JSON.stringify(o)).join('\n---\n');
    const dry = await applyStdin(['--dry-run=server'], input);
    expect(dry.code, dry.stderr).toBe(0);
    const real = await applyStdin([], input);
    expect(real.code, real.stderr).toBe(0);
    const sts = JSON.parse((await cp.kubectl(['get', 'statefulset', 'custom-rewind-collector', '-n', namespace, '-o', 'json'])).stdout);
    expect(sts.spec.replicas).toBe(3);
  });

  it('kubectl apply -f crds/ -f deploy/ succeeds, and deploy/make-secrets.sh makes the Secrets it needs once', async () => {
    const r = await cp.kubectl(['apply', '-f', path.join(ROOT, 'crds'), '-f', path.join(ROOT, 'deploy')]);
    expect(r.code, r.stderr).toBe(0);
    const run = () =>
      spawnSync('bash', [path.join(ROOT, 'deploy', 'make-secrets.sh')], {
        encoding: 'utf8',
        env: { ...process.env, KUBECTL: path.join(cp.bin, 'kubectl'), KUBECONFIG: cp.kubeconfig },
        timeout: 120_000,
      });
    const first = run();
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain('rewind-system/rewind-collector-tls created');
    const get = async (name: string) => JSON.parse((await cp.kubectl(['get', 'secret', name, '-n', 'rewind-system', '-o', 'json'])).stdout);
    const server = await get('rewind-collector-tls');
    const pem = (s: any, k: string) => Buffer.from(s.data[k], 'base64').toString();
    const ca = new crypto.X509Certificate(pem(server, 'ca.crt'));
    expect(new crypto.X509Certificate(pem(server, 'tls.crt')).checkHost('rewind-collector-0.rewind-collector.rewind-system.svc')).toBeTruthy();
    expect(new crypto.X509Certificate(pem(await get('rewind-controller-tls'), 'tls.crt')).verify(ca.publicKey)).toBe(true);
    expect(Buffer.from((await get('rewind-admin-token')).data.token, 'base64').toString()).toMatch(/^[A-Za-z0-9]{48}$/);
    // Every Secret a workload of deploy/ mounts now exists.
    for (const o of parseObjects(fs.readFileSync(DEPLOY_FILE, 'utf8'))) {
      for (const v of podSpecOf(o)?.volumes ?? []) if (v.secret) expect((await cp.kubectl(['get', 'secret', v.secret.secretName, '-n', 'rewind-system'])).code, v.secret.secretName).toBe(0);
    }
    const again = run();
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain('exist; kept');
    expect(pem(await get('rewind-collector-tls'), 'tls.crt')).toBe(pem(server, 'tls.crt'));
  });

  it('helm install works on the real API server, and helm upgrade keeps the generated token and certificates', async () => {
    const env = ['--kubeconfig', cp.kubeconfig];
    const namespace = 'rewind-helm';
    const install = helm(['install', 'rw', CHART, '-n', namespace, '--create-namespace', ...env]);
    expect(install.code, install.stderr).toBe(0);
    const secrets = async () => {
      const out: Record<string, unknown> = {};
      for (const s of ['rw-rewind-admin-token', 'rw-rewind-collector-tls', 'rw-rewind-controller-tls', 'rw-rewind-shipper-tls']) {
        const r = await cp.kubectl(['get', 'secret', s, '-n', namespace, '-o', 'jsonpath={.data}']);
        expect(r.code, r.stderr).toBe(0);
        out[s] = JSON.parse(r.stdout);
      }
      return out;
    };
    const before = await secrets();
    const upgrade = helm(['upgrade', 'rw', CHART, '-n', namespace, '--set', 'controller.workers=4', ...env]);
    expect(upgrade.code, upgrade.stderr).toBe(0);
    expect(await secrets()).toEqual(before);
    const args = (await cp.kubectl(['get', 'deployment', 'rw-rewind-controller', '-n', namespace, '-o', 'jsonpath={.spec.template.spec.containers[0].args}'])).stdout;
    expect(args).toContain('--workers=4');
    // Without the cluster (helm template) every render is new: the keeping is lookup's doing.
    const t1 = find(parseObjects(template()), 'Secret', 'rewind-admin-token').data.token;
    const t2 = find(parseObjects(template()), 'Secret', 'rewind-admin-token').data.token;
    expect(t1).not.toBe(t2);
  });

  it("the controller's ServiceAccount, with an issued token, holds exactly its rules: cluster-wide plus leases at home", async () => {
    expect((await applyStdin([], rendered)).code).toBe(0);
    expectRbac('controller.txt', await canIList(NS, 'rewind-controller', NS));
    expectRbac('controller-other-namespace.txt', await canIList(NS, 'rewind-controller', 'default'));
  });

  it("the collector's ServiceAccount, with an issued token, holds nothing beyond what every account has", async () => {
    expect((await applyStdin([], rendered)).code).toBe(0);
    const lines = await canIList(NS, 'rewind-collector', NS);
    expectRbac('collector.txt', lines);
    // Exactly the discovery and self-review rules the API server gives every authenticated account.
    const baseline = `baseline-${crypto.randomBytes(3).toString('hex')}`;
    expect((await cp.kubectl(['create', 'serviceaccount', baseline, '-n', NS])).code).toBe(0);
    expect(lines).toEqual(await canIList(NS, baseline, NS));
  });

  it('the real controller, under the chart ServiceAccount token, takes the Lease and makes a ProtectedVolume Ready', async () => {
    // The chart's objects (applied by the first test already; again here, the same render, a no-op).
    const applied = await applyStdin([], rendered);
    expect(applied.code, applied.stderr).toBe(0);
    const tokenB64 = (await cp.kubectl(['get', 'secret', 'rewind-admin-token', '-n', NS, '-o', 'jsonpath={.data.token}'])).stdout;
    const tokenFile = path.join(dir, 'admin.token');
    fs.writeFileSync(tokenFile, Buffer.from(tokenB64, 'base64').toString(), { mode: 0o600 });
    // The collector runs here, not in a pod (there is no kubelet): plaintext on loopback.
    const collector = await startRewind(['collector', '--data', path.join(dir, 'collector'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--admin-token-file', tokenFile, '--allow-plaintext']);
    const kubeconfig = await cp.serviceAccountKubeconfig(NS, 'rewind-controller');
    const deployArgs: string[] = container(find(parseObjects(rendered), 'Deployment'), 'controller').args;
    const fromChart = deployArgs.filter((a) => /^--(lease-namespace|lease-name|resync|workers)=/.test(a));
    let stopped: number | null = null;
    const controller = await startRewind(['controller', '--kubeconfig', kubeconfig, '--collector', collector.info.grpc!, '--collector-admin-token-file', tokenFile, '--collector-plaintext', '--identity', 'chart-sa', ...fromChart]);
    try {
      const apply = await applyStdin([], `apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: app}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 4Mi}}}
---
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: data, namespace: app}
spec: {pvcName: data}
`);
      expect(apply.code, apply.stderr).toBe(0);
      await eventually('the Lease held by the chart-SA controller', 30_000, async () => {
        const r = await cp.kubectl(['get', 'lease', 'rewind-controller', '-n', NS, '-o', 'jsonpath={.spec.holderIdentity}']);
        return r.stdout === 'chart-sa' ? true : undefined;
      });
      await eventually('ProtectedVolume app/data Ready', 60_000, async () => {
        const r = await cp.kubectl(['get', 'rwpv', 'data', '-n', 'app', '-o', 'json']);
        const o = r.code === 0 ? JSON.parse(r.stdout) : undefined;
        return o?.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
      });
      expect(controller.stderr()).not.toMatch(/forbidden/i);
    } finally {
      // Asserted after the stops, so a failure above is not hidden by this one.
      stopped = await controller.stop();
      await collector.stop();
    }
    expect(stopped, `a graceful stop exits 0; the controller's log ends:\n${controller.stderr().slice(-3000)}`).toBe(0);
  });
});
