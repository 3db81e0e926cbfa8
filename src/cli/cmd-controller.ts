import fs from 'node:fs/promises';
import os from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { ErrorCodes, RewindError, fromSystemError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { parseDuration } from '../core/time-parse.js';
import { loadTlsSecretDir } from '../collector/security.js';
import { runManager } from '../controller/manager.js';
import { createControllerMetrics } from '../metrics/controller-metrics.js';
import { flag, str, toJson, type Command } from './args.js';
import { startControllerMetricsHttp } from './controller-metrics-http.js';
import { parseListen } from './listen-address.js';

const ms = (text: string, what: string): number => {
  const v = Number(parseDuration(text) / 1_000_000n);
  if (!(v > 0)) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--${what} must be a positive duration such as 15s, not "${text}"`);
  return v;
};

export const controllerCommand: Command = {
  name: 'controller',
  summary: 'Run the Kubernetes controller: ProtectedVolume, RestorePoint and VolumeRestore against a collector',
  usage: `rewind controller --collector ADDR --collector-admin-token-file FILE [--collector-tls-dir DIR | --collector-plaintext]
                     [--kubeconfig FILE] [--context NAME] [--leader-elect | --no-leader-elect]
                     [--lease-namespace NS] [--lease-name NAME] [--identity ID]
                     [--lease-duration DURATION] [--renew-deadline DURATION] [--retry-period DURATION]
                     [--resync DURATION] [--workers N] [--metrics ADDR]

--collector          default collector gRPC address (HOST:PORT or unix:/path) for ProtectedVolumes
                     that name none
--collector-admin-token-file
                     the collector's admin token: registers volumes and issues their tokens
--collector-tls-dir  mTLS material (tls.crt, tls.key, ca.crt) for the collector connection;
                     --collector-plaintext allows a plaintext connection (trusted networks only)
--kubeconfig         kubeconfig file (default: in-cluster config, else KUBECONFIG / ~/.kube/config);
                     --context picks one of its contexts
--leader-elect       campaign for a coordination.k8s.io Lease before reconciling (default on);
                     --no-leader-elect for a single replica
--lease-namespace    namespace of the Lease (default: the kubeconfig context's, else default)
--lease-name         Lease name (default rewind-controller); --identity this replica's name
                     (default HOSTNAME-PID)
--lease-duration     how long a silent leader keeps the Lease (default 15s); --renew-deadline how
                     long the leader may fail to renew before it stops (default 10s);
                     --retry-period how often candidates try and the leader renews (default 2s)
--resync             how often a healthy ProtectedVolume's status is refreshed (default 10s)
--workers            concurrent reconciles per kind (default 2)
--metrics            serve Prometheus /metrics (each ProtectedVolume's Degraded and Protected
                     conditions, lag and RPO target; docs/metrics.md) and /healthz at
                     HOST:PORT (port 0 picks one); off by default

Prints one JSON line ({"identity", "lease"[, "metrics"]}) when started, logs JSON lines to stderr, and
reconciles once it leads. SIGINT/SIGTERM: finish reconciles in progress, release the Lease,
exit 0. Losing the Lease exits 1 (a replica that cannot renew must not go on reconciling).`,
  options: {
    collector: { type: 'string' },
    'collector-admin-token-file': { type: 'string' },
    'collector-tls-dir': { type: 'string' },
    'collector-plaintext': { type: 'boolean' },
    kubeconfig: { type: 'string' },
    context: { type: 'string' },
    'leader-elect': { type: 'boolean' },
    'no-leader-elect': { type: 'boolean' },
    'lease-namespace': { type: 'string' },
    'lease-name': { type: 'string' },
    identity: { type: 'string' },
    'lease-duration': { type: 'string' },
    'renew-deadline': { type: 'string' },
    'retry-period': { type: 'string' },
    resync: { type: 'string' },
    workers: { type: 'string' },
    metrics: { type: 'string' },
  },
  async run(args, io) {
    const collector = str(args, 'collector');
    const tokenFile = str(args, 'collector-admin-token-file');
    if (!collector || !tokenFile) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, '--collector and --collector-admin-token-file are required; see `rewind controller --help`');
    }
    const tlsDir = str(args, 'collector-tls-dir');
    const tls = tlsDir ? loadTlsSecretDir(tlsDir) : undefined;
    if (tls && !tls.ca) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--collector-tls-dir ${tlsDir} has no ca.crt; the controller must know the CA that signs the collector's certificate`);
    const plaintext = flag(args, 'collector-plaintext');
    if (!tlsDir && !plaintext) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'give --collector-tls-dir (mTLS to the collector) or --collector-plaintext (trusted network only)');
    }
    let adminToken: string;
    try {
      adminToken = (await fs.readFile(tokenFile, 'utf8')).trim();
    } catch (err) {
      throw fromSystemError(err, 'reading --collector-admin-token-file');
    }
    const workers = Number(str(args, 'workers') ?? '2');
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--workers must be an integer from 1 to 64, not "${str(args, 'workers')}"`);

    const kc = new k8s.KubeConfig();
    const kubeconfig = str(args, 'kubeconfig');
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
    const context = str(args, 'context');
    if (context) kc.setCurrentContext(context);
    if (!kc.getCurrentCluster()) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'no Kubernetes cluster configured: give --kubeconfig, or run in a pod');

    const identity = str(args, 'identity') ?? `${os.hostname()}-${process.pid}`;
    const leaseNamespace = str(args, 'lease-namespace') ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    const leaseName = str(args, 'lease-name') ?? 'rewind-controller';
    const elect = !flag(args, 'no-leader-elect');
    const log = createLogger({ component: 'controller', identity });

    const metricsArg = str(args, 'metrics');
    const metrics = metricsArg !== undefined ? createControllerMetrics() : undefined;
    const metricsHttp = metrics ? await startControllerMetricsHttp(parseListen(metricsArg!, '--metrics'), metrics) : undefined;

    io.out(toJson({ identity, lease: elect ? `${leaseNamespace}/${leaseName}` : null, ...(metricsHttp ? { metrics: metricsHttp.url } : {}) }, false) + '\n');
    return runManager(
      {
        kc,
        identity,
        collectors: {
          defaultAddress: collector,
          adminToken,
          target: tls ? { tls: { ca: tls.ca!, cert: tls.cert, key: tls.key } } : { allowPlaintext: true },
        },
        ...(elect
          ? {
              leaderElection: {
                namespace: leaseNamespace,
                name: leaseName,
                leaseDurationMs: ms(str(args, 'lease-duration') ?? '15s', 'lease-duration'),
                renewDeadlineMs: ms(str(args, 'renew-deadline') ?? '10s', 'renew-deadline'),
                retryPeriodMs: ms(str(args, 'retry-period') ?? '2s', 'retry-period'),
              },
            }
          : {}),
        resyncMs: ms(str(args, 'resync') ?? '10s', 'resync'),
        workers,
        log,
        ...(metrics ? { metrics } : {}),
      },
      io.stopSignal,
    ).finally(() => metricsHttp?.close());
  },
};
