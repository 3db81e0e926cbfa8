import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';

/**
 * A real Kubernetes control plane for the tests: etcd, kube-apiserver and
 * kube-controller-manager built from their Go modules (test/cluster/build-tools.sh), started
 * on 127.0.0.1 with a token file, RBAC, and a service-account signing key, stopped by PID.
 * No kubelet: pods are never run, but everything the API server and the controller manager
 * do (validation, CEL, RBAC, ServiceAccount tokens, garbage collection, namespace deletion,
 * leases) is the real thing.
 */
export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  adminToken: string;
  /** CA bundle of the API server's self-signed serving certificate. */
  caFile: string;
  /** An admin kubeconfig file (token auth, CA pinned). */
  kubeconfig: string;
  dir: string;
  bin: string;
  pids: { etcd: number; apiserver: number; controllerManager?: number };
  /** An admin KubeConfig for @kubernetes/client-node. */
  kubeConfig(): k8s.KubeConfig;
  /** Runs the real kubectl against this cluster (admin unless `kubeconfig` is given). */
  kubectl(args: string[], opts?: { kubeconfig?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<KubectlResult>;
  /**
   * A kubeconfig file for ServiceAccount NS/NAME with a token the API server issues
   * (TokenRequest), so a process runs with exactly the RBAC that account holds.
   */
  serviceAccountKubeconfig(namespace: string, name: string, opts?: { expirationSeconds?: number }): Promise<string>;
  stop(): Promise<void>;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

let binDir: string | undefined;
/** Builds (or finds in the cache) the binaries; fails loudly when they cannot be built. */
export function clusterBin(): string {
  if (binDir) return binDir;
  const out = execFileSync('bash', [path.join(HERE, 'build-tools.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 40 * 60_000 });
  binDir = out.trim().split('\n').pop()!;
  for (const b of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl']) {
    if (!fs.existsSync(path.join(binDir, b))) throw new Error(`test/cluster/build-tools.sh did not leave ${b} in ${binDir}`);
  }
  return binDir;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface Proc {
  child: ChildProcess;
  log: string;
}

function launch(dir: string, name: string, file: string, args: string[]): Proc {
  const log = path.join(dir, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const child = spawn(file, args, { stdio: ['ignore', fd, fd], detached: false });
  fs.closeSync(fd);
  return { child, log };
}

function tail(file: string, n = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

async function stopProc(p: Proc | undefined, graceMs = 10_000): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const done = new Promise<void>((r) => p.child.once('exit', () => r()));
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

function getText(url: string, caFile: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: fs.readFileSync(caFile), headers: { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : `HTTP ${res.statusCode}`));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

async function until(what: string, deadlineMs: number, probe: () => Promise<boolean>, why: () => string): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`${what} not ready after ${deadlineMs} ms:\n${why()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function writeKubeconfig(file: string, server: string, caFile: string, user: string, token: string, namespace = 'default'): void {
  const cfg = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'rewind-test', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'rewind-test', context: { cluster: 'rewind-test', user, namespace } }],
    'current-context': 'rewind-test',
  };
  fs.writeFileSync(file, JSON.stringify(cfg, null, 2), { mode: 0o600 });
}

export async function startControlPlane(opts: { controllerManager?: boolean } = {}): Promise<ControlPlane> {
  const bin = clusterBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-cluster-'));
  const procs: { etcd?: Proc; apiserver?: Proc; kcm?: Proc } = {};
  const stop = async () => {
    await stopProc(procs.kcm);
    await stopProc(procs.apiserver);
    await stopProc(procs.etcd);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const adminToken = crypto.randomBytes(24).toString('hex');
    fs.writeFileSync(path.join(dir, 'tokens.csv'), `${adminToken},admin,admin,"system:masters"\n`, { mode: 0o600 });
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = path.join(dir, 'sa.key');
    const saPub = path.join(dir, 'sa.pub');
    fs.writeFileSync(saKey, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    fs.writeFileSync(saPub, publicKey.export({ type: 'spki', format: 'pem' }));

    const etcdPort = await freePort();
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    procs.etcd = launch(dir, 'etcd', path.join(bin, 'etcd'), [
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      '--listen-peer-urls=http://127.0.0.1:0',
      // Test data: a crash loses the cluster with the test, so no fsync.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await until('etcd', 30_000, async () => (await fetch(`${etcdUrl}/health`)).ok, () => tail(procs.etcd!.log));

    const port = await freePort();
    const certDir = path.join(dir, 'certs');
    procs.apiserver = launch(dir, 'kube-apiserver', path.join(bin, 'kube-apiserver'), [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      // Needed where there is no default route to pick an advertise address from.
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${certDir}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      // No kubelet or kube-proxy: nothing would serve the kubernetes Service's endpoints.
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      ...(opts.controllerManager === false ? ['--disable-admission-plugins=ServiceAccount'] : []),
    ]);
    const server = `https://127.0.0.1:${port}`;
    const caFile = path.join(certDir, 'apiserver.crt');
    await until('kube-apiserver', 90_000, async () => fs.existsSync(caFile) && (await getText(`${server}/readyz`, caFile, adminToken)) === 'ok', () => tail(procs.apiserver!.log));

    const kubeconfig = path.join(dir, 'admin.kubeconfig');
    writeKubeconfig(kubeconfig, server, caFile, 'admin', adminToken);

    if (opts.controllerManager !== false) {
      procs.kcm = launch(dir, 'kube-controller-manager', path.join(bin, 'kube-controller-manager'), [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        `--service-account-private-key-file=${saKey}`,
        `--root-ca-file=${caFile}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        // Its own health endpoint is not used by the tests: no port to collide on.
        '--secure-port=0',
        // Each controller under its own ServiceAccount, as in a real cluster.
        '--use-service-account-credentials=true',
      ]);
    }

    const run = async (args: string[], o: { kubeconfig?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<KubectlResult> => {
      return new Promise((resolve) => {
        // KUBECONFIG rather than --kubeconfig: kubectl dispatches `create <sub>` to a plugin
        // only when no global flag comes before `create`, and the plugin reads it too.
        const child = spawn(path.join(bin, 'kubectl'), args, { env: { ...process.env, KUBECONFIG: o.kubeconfig ?? kubeconfig, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const t = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
        child.on('close', (code) => {
          clearTimeout(t);
          resolve({ code: code ?? 1, stdout, stderr });
        });
        child.stdin.end(o.input ?? '');
      });
    };

    const cp: ControlPlane = {
      server,
      adminToken,
      caFile,
      kubeconfig,
      dir,
      bin,
      pids: { etcd: procs.etcd.child.pid!, apiserver: procs.apiserver.child.pid!, controllerManager: procs.kcm?.child.pid },
      kubeConfig() {
        const kc = new k8s.KubeConfig();
        kc.loadFromFile(kubeconfig);
        return kc;
      },
      kubectl: run,
      async serviceAccountKubeconfig(namespace, name, o = {}) {
        const core = cp.kubeConfig().makeApiClient(k8s.CoreV1Api);
        const tr = await core.createNamespacedServiceAccountToken({
          name,
          namespace,
          body: { spec: { audiences: [], expirationSeconds: o.expirationSeconds ?? 3600 } },
        });
        const file = path.join(dir, `sa-${namespace}-${name}.kubeconfig`);
        writeKubeconfig(file, server, caFile, `system:serviceaccount:${namespace}:${name}`, tr.status!.token, namespace);
        return file;
      },
      stop,
    };
    if (procs.kcm) {
      // The controller manager is up once it has made the default ServiceAccount of a namespace.
      await until('kube-controller-manager', 90_000, async () => (await run(['get', 'serviceaccount', 'default', '-n', 'default', '-o', 'name'])).code === 0, () => tail(procs.kcm!.log));
    }
    return cp;
  } catch (err) {
    await stop();
    throw err;
  }
}
