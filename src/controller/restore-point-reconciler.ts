import type * as k8s from '@kubernetes/client-node';
import { PLURALS, RP_CONDITION_READY, RpReasons, type ProtectedVolume, type RestorePoint, type RestorePointStatus } from '../api/index.js';
import { ErrorCodes, isRewindError } from '../core/errors.js';
import { failpoint } from '../core/failpoint.js';
import { formatNs } from '../core/hlc.js';
import { parseInstant } from '../core/time-parse.js';
import type { CollectorApi } from '../rpc/collector-api.js';
import { eventTarget, getObject, listObjects, replaceObject, replaceStatus, sameJson, type ControllerContext } from './context.js';
import { TOKEN_KEY } from './protected-volume-reconciler.js';
import { isNotFound } from './runtime/api-errors.js';
import { setCondition } from './runtime/conditions.js';
import { DONE, requeueAfter, type ReconcileResult, type Reconciler } from './runtime/kind-controller.js';

const KIND = 'RestorePoint';
/** Releases the collector's mark before the object goes. */
export const MARK_FINALIZER = 'cdp.rewind.dev/mark';

/** A volume as the collector knows it, and the credential to reach it. */
export interface VolumeAccess {
  pv: ProtectedVolume;
  api: CollectorApi;
  volume: string;
  token: string;
}

/** The ProtectedVolume of PVC `pvcName`, its collector volume and token; a reason when not usable yet. */
export async function volumeAccess(ctx: ControllerContext, namespace: string, pvcName: string): Promise<VolumeAccess | { notReady: string }> {
  const pvs = await listObjects<ProtectedVolume>(ctx, PLURALS.ProtectedVolume, namespace);
  const pv = pvs.find((p) => p.spec.pvcName === pvcName && !p.metadata.deletionTimestamp);
  if (!pv) return { notReady: `no ProtectedVolume in ${namespace} protects PVC ${pvcName}; create one (spec.pvcName: ${pvcName})` };
  const volume = pv.status?.collectorVolume;
  const secretName = pv.status?.tokenSecretName;
  if (!volume || !secretName) return { notReady: `ProtectedVolume ${namespace}/${pv.metadata.name} is not registered on a collector yet` };
  let secret: k8s.V1Secret;
  try {
    secret = await ctx.core.readNamespacedSecret({ namespace, name: secretName });
  } catch (err) {
    if (isNotFound(err)) return { notReady: `token Secret ${namespace}/${secretName} is missing; the ProtectedVolume controller makes it again` };
    throw err;
  }
  const token = Buffer.from(secret.data?.[TOKEN_KEY] ?? '', 'base64').toString('utf8');
  if (!token) return { notReady: `token Secret ${namespace}/${secretName} has no ${TOKEN_KEY}` };
  return { pv, api: ctx.collectors.get(pv.spec.collector?.address).api, volume, token };
}

/**
 * RestorePoint: a mark in the volume's journal at `at` (a past instant) or now, ordered
 * with the writes around it. The mark's id is the RestorePoint's UID, so a controller that
 * dies between making the mark and writing status makes no second mark when it runs
 * again: the collector answers the same id with the same mark. The finalizer deletes the
 * mark before the object goes.
 */
export class RestorePointReconciler implements Reconciler {
  readonly kind = KIND;
  constructor(private readonly ctx: ControllerContext) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    let rp = await getObject<RestorePoint>(this.ctx, PLURALS.RestorePoint, namespace, name);
    if (!rp) return DONE;
    if (rp.metadata.deletionTimestamp) return this.release(rp);
    const phase = rp.status?.phase;
    if ((phase === 'Ready' || phase === 'Failed') && rp.status?.observedGeneration === rp.metadata.generation) return DONE;
    if (!rp.metadata.finalizers?.includes(MARK_FINALIZER)) {
      rp = await replaceObject(this.ctx, PLURALS.RestorePoint, { ...rp, metadata: { ...rp.metadata, finalizers: [...(rp.metadata.finalizers ?? []), MARK_FINALIZER] } });
    }

    const before = rp.status ?? {};
    const status: RestorePointStatus = { ...before, observedGeneration: rp.metadata.generation };
    const now = new Date(Number(this.ctx.nowNs() / 1_000_000n));
    let event: { type: 'Normal' | 'Warning'; reason: string; message: string } | undefined;
    const settle = (ph: RestorePointStatus['phase'], ok: 'True' | 'False', reason: string, message: string) => {
      const r = setCondition(status.conditions, { type: RP_CONDITION_READY, status: ok, reason, message }, rp!.metadata.generation, now);
      status.conditions = r.conditions;
      const moved = ph !== before.phase || r.transitioned;
      status.phase = ph;
      if (moved) event = { type: ok === 'True' ? 'Normal' : 'Warning', reason, message };
    };

    let result: ReconcileResult = DONE;
    let failure: unknown;
    try {
      result = await this.resolve(rp, status, settle);
    } catch (err) {
      failure = err;
      if (isRewindError(err) && err.code === ErrorCodes.POINT_OUT_OF_WINDOW) {
        settle('Failed', 'False', RpReasons.OutOfWindow, err.message);
        failure = undefined;
      } else if (isRewindError(err) && (err.code === ErrorCodes.UNAVAILABLE || err.code === ErrorCodes.TIMEOUT)) {
        settle('Pending', 'False', RpReasons.CollectorUnreachable, `collector unreachable: ${err.message}`);
      }
    }
    if (!sameJson(before, status)) {
      await failpoint('restorepoint-before-status-write');
      await replaceStatus(this.ctx, PLURALS.RestorePoint, { ...rp, status });
      if (event) await this.ctx.events.record(eventTarget(KIND, rp), event.type, event.reason, event.message);
    }
    if (failure) throw failure;
    return result;
  }

  private async resolve(rp: RestorePoint, status: RestorePointStatus, settle: (ph: RestorePointStatus['phase'], ok: 'True' | 'False', reason: string, message: string) => void): Promise<ReconcileResult> {
    const namespace = rp.metadata.namespace!;
    if (!rp.spec.volume) {
      settle('Failed', 'False', 'GroupNotSupported', 'a RestorePoint over a selector (consistency group) is not supported by this controller version; make one RestorePoint per PVC with spec.volume');
      return DONE;
    }
    let atNs: bigint | undefined;
    if (rp.spec.at !== undefined) {
      atNs = parseInstant(rp.spec.at);
      if (atNs > this.ctx.nowNs()) {
        settle('Failed', 'False', RpReasons.AtInFuture, `spec.at ${rp.spec.at} is in the future; a RestorePoint names an instant that has happened (omit spec.at for now)`);
        return DONE;
      }
    }
    const access = await volumeAccess(this.ctx, namespace, rp.spec.volume);
    if ('notReady' in access) {
      settle('Pending', 'False', RpReasons.VolumeNotProtected, access.notReady);
      return requeueAfter(2_000);
    }
    const id = rp.metadata.uid!;
    const mark = await access.api.createMark(access.volume, access.token, `${rp.metadata.name}.${id.slice(0, 8)}`, atNs === undefined ? undefined : { time: atNs }, { id });
    await failpoint('restorepoint-after-mark');
    status.markId = id;
    status.seq = Number(mark.seq);
    status.time = formatNs(mark.time);
    status.changedBytesSincePrevious = await changedSincePrevious(access, mark.seq);
    settle('Ready', 'True', RpReasons.Resolved, `mark at seq ${mark.seq}, ${formatNs(mark.time)}`);
    return DONE;
  }

  private async release(rp: RestorePoint): Promise<ReconcileResult> {
    if (!rp.metadata.finalizers?.includes(MARK_FINALIZER)) return DONE;
    if (rp.spec.volume) {
      const access = await volumeAccess(this.ctx, rp.metadata.namespace!, rp.spec.volume);
      // No ProtectedVolume or token left: the collector volume is unreachable to us, and
      // keeping the object would only block the namespace's deletion.
      if (!('notReady' in access)) await access.api.deleteMark(access.volume, access.token, rp.metadata.uid!);
    }
    await replaceObject(this.ctx, PLURALS.RestorePoint, { ...rp, metadata: { ...rp.metadata, finalizers: rp.metadata.finalizers.filter((f) => f !== MARK_FINALIZER) } });
    await this.ctx.events.record(eventTarget(KIND, rp), 'Normal', 'Released', `mark ${rp.metadata.uid} deleted from the collector`);
    return DONE;
  }
}

/** Bytes that differ between the volume's previous mark and this one (0 for the first). */
async function changedSincePrevious(a: VolumeAccess, seq: bigint): Promise<number> {
  const marks = await a.api.listMarks(a.volume, a.token);
  const prev = marks.filter((m) => m.seq < seq).sort((x, y) => (x.seq < y.seq ? 1 : -1))[0];
  if (!prev) return 0;
  const extents = await a.api.diff(a.volume, a.token, { seq: prev.seq }, { seq });
  return Number(extents.reduce((n, e) => n + e.length, 0n));
}
