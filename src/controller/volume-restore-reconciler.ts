import type * as k8s from '@kubernetes/client-node';
import {
  API_VERSION, PLURALS, VR_CONDITION_COMPLETE, VR_CONDITION_FAILED, VrReasons,
  type ProtectedVolume, type RestorePoint, type VolumeRestore, type VolumeRestoreStatus,
} from '../api/index.js';
import { ErrorCodes, RewindError, isRewindError } from '../core/errors.js';
import { formatNs } from '../core/hlc.js';
import { parseInstant } from '../core/time-parse.js';
import type { PointSpec } from '../rpc/api-types.js';
import { eventTarget, getObject, writeStatusFresh, type ControllerContext } from './context.js';
import { writeHistory } from './history-writer.js';
import { volumeAccess, type VolumeAccess } from './restore-point-reconciler.js';
import { isNotFound } from './runtime/api-errors.js';
import { setCondition } from './runtime/conditions.js';
import { DONE, requeueAfter, type ReconcileResult, type Reconciler } from './runtime/kind-controller.js';

const KIND = 'VolumeRestore';
/** On a PVC a VolumeRestore fills: which restore, and whether it is done. The node side stages the volume only once it reads Completed (fail closed). */
export const RESTORE_SOURCE_ANNOTATION = 'cdp.rewind.dev/restored-by';
export const RESTORE_STATE_ANNOTATION = 'cdp.rewind.dev/restore-state';
const PROGRESS_EVERY_MS = 1_000;

class Refusal extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

/**
 * VolumeRestore: the volume as of a RestorePoint or an instant, written as history into
 * the target's collector volume (src/controller/history-writer.ts):
 * - newPVC: a PVC made for it (annotated restore-state Pending → Completed | Failed) with
 *   its own ProtectedVolume; the image is written into that volume's journal, and its node
 *   side fills the device from the collector before first use;
 * - inPlace: only the blocks that differ between the point and now are written back into
 *   the volume's own journal, while no node streams it; its node side catches up on its
 *   next start. The revert is history too, so it can be undone.
 * Fails closed: a restore that cannot complete leaves the target marked Failed, never Completed.
 */
export class VolumeRestoreReconciler implements Reconciler {
  readonly kind = KIND;
  constructor(private readonly ctx: ControllerContext) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const vr = await getObject<VolumeRestore>(this.ctx, PLURALS.VolumeRestore, namespace, name);
    if (!vr || vr.metadata.deletionTimestamp) return DONE;
    const phase = vr.status?.phase;
    if (phase === 'Completed' || phase === 'Failed') return DONE;
    const status: VolumeRestoreStatus = { ...(vr.status ?? {}), observedGeneration: vr.metadata.generation };
    const now = () => new Date(Number(this.ctx.nowNs() / 1_000_000n));
    const write = () => writeStatusFresh<VolumeRestore>(this.ctx, PLURALS.VolumeRestore, namespace, name, status);

    try {
      const source = await volumeAccess(this.ctx, namespace, vr.spec.volume);
      if ('notReady' in source) throw new Refusal('VolumeNotProtected', source.notReady);
      const point = await this.pointOf(vr);
      if ('wait' in point) {
        status.phase = 'Pending';
        status.conditions = setCondition(status.conditions, { type: VR_CONDITION_COMPLETE, status: 'False', reason: VrReasons.RestorePointNotReady, message: point.wait }, vr.metadata.generation, now()).conditions;
        await write();
        return requeueAfter(2_000);
      }
      const target = vr.spec.target.inPlace ? await this.inPlaceTarget(source) : await this.newPvcTarget(vr, source);
      if ('wait' in target) {
        status.phase = 'Pending';
        status.conditions = setCondition(status.conditions, { type: VR_CONDITION_COMPLETE, status: 'False', reason: 'WaitingForTarget', message: target.wait }, vr.metadata.generation, now()).conditions;
        await write();
        return requeueAfter(1_000);
      }

      status.phase = 'Running';
      status.startTime ??= now().toISOString();
      status.resolvedTime = formatNs(point.time);
      if (point.seq !== undefined) status.resolvedSeq = Number(point.seq);
      status.conditions = setCondition(status.conditions, { type: VR_CONDITION_COMPLETE, status: 'False', reason: vr.spec.target.inPlace ? VrReasons.Reverting : VrReasons.Copying, message: `writing ${vr.spec.volume} as of ${status.resolvedTime ?? 'the point'} into ${target.describe}` }, vr.metadata.generation, now()).conditions;
      await write();
      await this.ctx.events.record(eventTarget(KIND, vr), 'Normal', 'Started', `restoring ${vr.spec.volume} into ${target.describe}`);

      const targetStatus = await target.access.api.status(target.access.volume, target.access.token);
      let lastWrite = Date.now();
      const chunks = source.api.restore(source.volume, source.token, point.at, target.changedSince ? { changedSince: target.changedSince } : {});
      const written = await writeHistory(this.ctx.collectors.target(target.access.pv.spec.collector?.address), target.access.volume, target.access.token, targetStatus.size, chunks, {
        minTimeNs: targetStatus.durableTime + 1n,
        nowNs: this.ctx.nowNs,
        onProgress: (done, total) => {
          status.bytesDone = Number(done);
          status.bytesTotal = Number(total);
          if (Date.now() - lastWrite >= PROGRESS_EVERY_MS) {
            lastWrite = Date.now();
            void write().catch(() => undefined);
          }
        },
      });
      status.bytesDone = status.bytesTotal ?? Number(targetStatus.size);
      status.bytesTotal ??= Number(targetStatus.size);
      status.phase = 'Completed';
      status.completionTime = now().toISOString();
      status.conditions = setCondition(status.conditions, { type: VR_CONDITION_COMPLETE, status: 'True', reason: VrReasons.Completed, message: `${target.describe} holds ${vr.spec.volume} as of ${status.resolvedTime ?? 'the point'} (journal seq ${written.firstSeq}–${written.lastSeq}, ${written.bytes} data bytes)` }, vr.metadata.generation, now()).conditions;
      await target.finish?.('Completed');
      await write();
      await this.ctx.events.record(eventTarget(KIND, vr), 'Normal', VrReasons.Completed, `restored into ${target.describe}`);
      return DONE;
    } catch (err) {
      const transient = !(err instanceof Refusal) && !(isRewindError(err) && [ErrorCodes.POINT_OUT_OF_WINDOW, ErrorCodes.POINT_NOT_EXACT, ErrorCodes.NOT_FOUND, ErrorCodes.INVALID_ARGUMENT].includes(err.code as never));
      if (transient && status.phase !== 'Running') throw err;
      // A failure after writing began, or a refusal: the target is marked Failed, never Completed.
      const reason = err instanceof Refusal ? err.reason : isRewindError(err) && err.code === ErrorCodes.POINT_OUT_OF_WINDOW ? VrReasons.OutOfWindow : 'RestoreFailed';
      status.phase = 'Failed';
      status.completionTime = now().toISOString();
      status.conditions = setCondition(status.conditions, { type: VR_CONDITION_COMPLETE, status: 'False', reason, message: (err as Error).message }, vr.metadata.generation, now()).conditions;
      status.conditions = setCondition(status.conditions, { type: VR_CONDITION_FAILED, status: 'True', reason, message: (err as Error).message }, vr.metadata.generation, now()).conditions;
      if (!vr.spec.target.inPlace && vr.spec.target.newPVC) await this.markPvc(namespace, vr.spec.target.newPVC.name, vr, 'Failed').catch(() => undefined);
      await write();
      await this.ctx.events.record(eventTarget(KIND, vr), 'Warning', reason, (err as Error).message);
      return DONE;
    }
  }

  /** The point to restore, with its time (and seq, for a RestorePoint). */
  private async pointOf(vr: VolumeRestore): Promise<{ at: PointSpec; time: bigint; seq?: bigint } | { wait: string }> {
    if (vr.spec.source.at !== undefined) {
      const ns = parseInstant(vr.spec.source.at);
      if (ns > this.ctx.nowNs()) throw new Refusal('AtInFuture', `spec.source.at ${vr.spec.source.at} is in the future; restore an instant that has happened`);
      return { at: { time: ns }, time: ns };
    }
    const rpName = vr.spec.source.restorePoint!;
    const rp = await getObject<RestorePoint>(this.ctx, PLURALS.RestorePoint, vr.metadata.namespace!, rpName);
    if (!rp) throw new Refusal(VrReasons.RestorePointNotReady, `RestorePoint ${vr.metadata.namespace}/${rpName} does not exist`);
    if (rp.spec.volume !== vr.spec.volume) throw new Refusal(VrReasons.RestorePointNotReady, `RestorePoint ${rpName} belongs to volume ${rp.spec.volume}, not ${vr.spec.volume}`);
    if (rp.status?.phase === 'Failed') throw new Refusal(VrReasons.RestorePointNotReady, `RestorePoint ${rpName} failed: ${rp.status.conditions?.[0]?.message ?? ''}`);
    if (rp.status?.phase !== 'Ready' || rp.status.seq === undefined) return { wait: `RestorePoint ${rpName} is not Ready yet` };
    return { at: { seq: BigInt(rp.status.seq) }, seq: BigInt(rp.status.seq), time: parseInstant(rp.status.time!) };
  }

  /** In place: refused while a node streams the volume or a VolumeAttachment holds its PV. */
  private async inPlaceTarget(source: VolumeAccess): Promise<Target> {
    const st = await source.api.status(source.volume, source.token);
    if (st.writerConnected) throw new Refusal(VrReasons.VolumeInUse, `volume ${source.pv.spec.pvcName} is in use: a node is streaming it; stop the workload (scale it to 0) so the volume is detached, then create the VolumeRestore again`);
    const pvc = await this.ctx.core.readNamespacedPersistentVolumeClaim({ namespace: source.pv.metadata.namespace!, name: source.pv.spec.pvcName });
    const pvName = pvc.spec?.volumeName;
    if (pvName) {
      const vas = await this.ctx.storage.listVolumeAttachment();
      const holder = vas.items.find((va) => va.spec.source.persistentVolumeName === pvName && va.status?.attached !== false);
      if (holder) throw new Refusal(VrReasons.VolumeInUse, `volume ${source.pv.spec.pvcName} is attached to node ${holder.spec.nodeName} (VolumeAttachment ${holder.metadata?.name}); detach it first`);
    }
    return { access: source, changedSince: { seq: st.durableSeq }, describe: `${source.pv.spec.pvcName} (in place)` };
  }

  /** A new PVC (made here, like the source but of the Rewind StorageClass) and its ProtectedVolume. */
  private async newPvcTarget(vr: VolumeRestore, source: VolumeAccess): Promise<Target | { wait: string }> {
    const namespace = vr.metadata.namespace!;
    const spec = vr.spec.target.newPVC!;
    const src = await this.ctx.core.readNamespacedPersistentVolumeClaim({ namespace, name: vr.spec.volume });
    let pvc: k8s.V1PersistentVolumeClaim | undefined;
    try {
      pvc = await this.ctx.core.readNamespacedPersistentVolumeClaim({ namespace, name: spec.name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (pvc && pvc.metadata?.annotations?.[RESTORE_SOURCE_ANNOTATION] !== vr.metadata.uid) {
      throw new Refusal('TargetExists', `PVC ${namespace}/${spec.name} already exists and was not made by this VolumeRestore; pick another target name`);
    }
    if (!pvc) {
      const size = spec.size !== undefined ? String(spec.size) : src.spec?.resources?.requests?.storage;
      await this.ctx.core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: {
          metadata: {
            name: spec.name,
            namespace,
            annotations: { [RESTORE_SOURCE_ANNOTATION]: vr.metadata.uid!, [RESTORE_STATE_ANNOTATION]: 'Pending' },
            labels: { 'app.kubernetes.io/managed-by': 'rewind-controller' },
          },
          spec: {
            accessModes: src.spec?.accessModes ?? ['ReadWriteOnce'],
            storageClassName: spec.storageClassName ?? src.spec?.storageClassName,
            volumeMode: src.spec?.volumeMode,
            resources: { requests: { storage: size! } },
          },
        },
      });
    }
    const pvs = (await this.ctx.custom.listNamespacedCustomObject({ group: API_VERSION.split('/')[0]!, version: API_VERSION.split('/')[1]!, namespace, plural: PLURALS.ProtectedVolume })) as { items: ProtectedVolume[] };
    if (!pvs.items.some((p) => p.spec.pvcName === spec.name)) {
      await this.ctx.custom.createNamespacedCustomObject({
        group: API_VERSION.split('/')[0]!, version: API_VERSION.split('/')[1]!, namespace, plural: PLURALS.ProtectedVolume,
        body: {
          apiVersion: API_VERSION,
          kind: 'ProtectedVolume',
          metadata: { name: spec.name, namespace },
          spec: { ...source.pv.spec, pvcName: spec.name },
        },
      });
    }
    const access = await volumeAccess(this.ctx, namespace, spec.name);
    if ('notReady' in access) return { wait: access.notReady };
    const st = await access.api.status(access.volume, access.token);
    if (st.writerConnected) throw new Refusal(VrReasons.VolumeInUse, `new PVC ${spec.name} is already streamed by a node; a restore target must not be in use`);
    return { access, describe: `PVC ${spec.name}`, finish: (state) => this.markPvc(namespace, spec.name, vr, state) };
  }

  private async markPvc(namespace: string, name: string, vr: VolumeRestore, state: 'Completed' | 'Failed'): Promise<void> {
    const pvc = await this.ctx.core.readNamespacedPersistentVolumeClaim({ namespace, name });
    if (pvc.metadata?.annotations?.[RESTORE_SOURCE_ANNOTATION] !== vr.metadata.uid) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `PVC ${name} is not this restore's`);
    pvc.metadata!.annotations![RESTORE_STATE_ANNOTATION] = state;
    await this.ctx.core.replaceNamespacedPersistentVolumeClaim({ namespace, name, body: pvc });
  }
}

interface Target {
  access: VolumeAccess;
  /** In place: only what changed since this point is written back. */
  changedSince?: PointSpec;
  describe: string;
  finish?: (state: 'Completed') => Promise<void>;
}
