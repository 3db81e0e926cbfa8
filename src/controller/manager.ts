import * as k8s from '@kubernetes/client-node';
import { GROUP, PLURALS, VERSION } from '../api/index.js';
import type { Logger } from '../core/logger.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';
import { CollectorPool, type CollectorAccess, type ControllerContext } from './context.js';
import { ProtectedVolumeReconciler } from './protected-volume-reconciler.js';
import { RestorePointReconciler } from './restore-point-reconciler.js';
import { VolumeRestoreReconciler } from './volume-restore-reconciler.js';
import { EventRecorder } from './runtime/events.js';
import { KindController, type Reconciler } from './runtime/kind-controller.js';
import { LeaderElector } from './runtime/leader-election.js';

export interface ManagerOptions {
  kc: k8s.KubeConfig;
  collectors: CollectorAccess;
  identity: string;
  /** Absent: no leader election (one replica only). */
  leaderElection?: { namespace: string; name: string; leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  resyncMs: number;
  workers: number;
  log: Logger;
  nowNs?: () => bigint;
  metrics?: ControllerMetrics;
}

/**
 * The controller process: waits to lead (when elected), then runs one informer + queue +
 * workers per kind. Stops gracefully on `stop`: no new reconciles, those in progress end,
 * the Lease is released. Resolves with the exit status: 0 after a requested stop, 1 when
 * leadership was lost (the process must exit so it never reconciles beside a new leader).
 */
export async function runManager(opts: ManagerOptions, stop: Promise<unknown>, onLeading?: () => void): Promise<number> {
  const { kc, log } = opts;
  const collectors = new CollectorPool(opts.collectors);
  const ctx: ControllerContext = {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    storage: kc.makeApiClient(k8s.StorageV1Api),
    collectors,
    events: new EventRecorder(kc, 'rewind-controller', opts.identity, log.child({ component: 'events' })),
    log,
    nowNs: opts.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n),
    resyncMs: opts.resyncMs,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  };

  let lost: (why: string) => void = () => undefined;
  const leadershipLost = new Promise<string>((resolve) => (lost = resolve));
  const elector = opts.leaderElection ? new LeaderElector(kc, { ...opts.leaderElection, identity: opts.identity, logger: log.child({ component: 'leader-election' }) }) : undefined;
  const stopped = stop.then(() => 'stop' as const);

  if (elector) {
    const lead = await Promise.race([elector.acquire(lost), stopped]);
    if (lead !== true) {
      await elector.stop();
      collectors.close();
      return 0;
    }
  }
  onLeading?.();

  const reconcilers: Array<[string, Reconciler]> = [
    [PLURALS.ProtectedVolume, new ProtectedVolumeReconciler(ctx)],
    [PLURALS.RestorePoint, new RestorePointReconciler(ctx)],
    [PLURALS.VolumeRestore, new VolumeRestoreReconciler(ctx)],
  ];
  const custom = ctx.custom;
  const controllers = reconcilers.map(
    ([plural, reconciler]) =>
      new KindController({
        kc,
        path: `/apis/${GROUP}/${VERSION}/${plural}`,
        list: () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural }) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>,
        reconciler,
        workers: opts.workers,
        logger: log,
      }),
  );
  for (const c of controllers) await c.start();
  log.info('controller running', { identity: opts.identity, kinds: reconcilers.map(([p]) => p) });

  const why = await Promise.race([stopped, leadershipLost]);
  log.info('controller stopping', { why });
  await Promise.all(controllers.map((c) => c.stop()));
  await elector?.stop();
  collectors.close();
  return why === 'stop' ? 0 : 1;
}
