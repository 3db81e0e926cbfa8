import crypto from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import {
  API_VERSION, DEFAULT_DURABILITY, PLURALS, PV_CONDITION_DEGRADED, PV_CONDITION_PROTECTED, PV_CONDITION_READY, PvReasons,
  type ProtectedVolume, type ProtectedVolumeStatus,
} from '../api/index.js';
import { formatNs } from '../core/hlc.js';
import { isRewindError } from '../core/errors.js';
import type { CollectorApi, VolumeStatusView } from '../rpc/collector-api.js';
import { eventTarget, getObject, replaceStatus, sameJson, type ControllerContext } from './context.js';
import { parseByteQuantity } from './quantity.js';
import { isNotFound } from './runtime/api-errors.js';
import { setCondition, type ConditionInput } from './runtime/conditions.js';
import { DONE, requeueAfter, type ReconcileResult, type Reconciler } from './runtime/kind-controller.js';

const KIND = 'ProtectedVolume';

/** The collector volume of a PVC: its UID, so a PVC deleted and made again under the same name never inherits the old one's history. */
export const collectorVolumeName = (pvc: k8s.V1PersistentVolumeClaim): string => `pvc-${pvc.metadata!.uid}`;
export const tokenSecretName = (pv: ProtectedVolume): string => `rewind-token-${pv.metadata.name}`.slice(0, 253);

/** The key in the token Secret the node side reads. */
export const TOKEN_KEY = 'token';

/**
 * ProtectedVolume: ties a PVC to a collector. Ensure-steps, each idempotent: the PVC exists
 * → a per-volume token Secret (owned by the ProtectedVolume, so it goes with it) → the
 * volume registered on the collector with that token → status read from the collector's
 * own report. One status write at the end; a failed write is thrown, not hidden.
 *
 * Deleting a ProtectedVolume keeps the history on the collector (no finalizer): history is
 * the thing this product protects, and a ProtectedVolume made again for the same PVC
 * adopts it (same collector volume, token rotated).
 */
export class ProtectedVolumeReconciler implements Reconciler {
  readonly kind = KIND;
  constructor(private readonly ctx: ControllerContext) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const pv = await getObject<ProtectedVolume>(this.ctx, PLURALS.ProtectedVolume, namespace, name);
    if (!pv || pv.metadata.deletionTimestamp) {
      this.ctx.metrics?.forgetProtectedVolume(namespace, name);
      return DONE;
    }
    const now = new Date(Number(this.ctx.nowNs() / 1_000_000n));
    const gen = pv.metadata.generation;
    const before = pv.status ?? {};
    const status: ProtectedVolumeStatus = { ...before, observedGeneration: gen };
    const transitions: Array<{ type: string; c: ConditionInput }> = [];
    const set = (type: string, c: ConditionInput) => {
      const r = setCondition(status.conditions, { ...c, type }, gen, now);
      status.conditions = r.conditions;
      if (r.transitioned) transitions.push({ type, c });
    };

    let result: ReconcileResult = requeueAfter(this.ctx.resyncMs);
    let failure: unknown;
    try {
      const pvc = await this.readPvc(namespace, pv.spec.pvcName);
      if (!pvc) {
        set(PV_CONDITION_READY, { type: PV_CONDITION_READY, status: 'False', reason: PvReasons.PvcNotFound, message: `PersistentVolumeClaim ${namespace}/${pv.spec.pvcName} does not exist; create it or fix spec.pvcName` });
        set(PV_CONDITION_PROTECTED, { type: PV_CONDITION_PROTECTED, status: 'False', reason: PvReasons.PvcNotFound, message: 'no PVC to protect' });
      } else {
        const volume = collectorVolumeName(pvc);
        const token = await this.ensureTokenSecret(pv, volume);
        const { api, address } = this.ctx.collectors.get(pv.spec.collector?.address);
        let view: VolumeStatusView | undefined;
        try {
          await api.registerVolume(this.ctx.collectors.access.adminToken, volume, pvcSize(pvc), token);
          view = await api.status(volume, token);
        } catch (err) {
          if (!isRewindError(err) || !['REWIND_ERR_UNAVAILABLE', 'REWIND_ERR_TIMEOUT'].includes(err.code)) throw err;
          const msg = `collector ${address} is unreachable: ${err.message}`;
          set(PV_CONDITION_READY, { type: PV_CONDITION_READY, status: 'False', reason: PvReasons.CollectorUnreachable, message: msg });
          set(PV_CONDITION_DEGRADED, { type: PV_CONDITION_DEGRADED, status: 'True', reason: PvReasons.CollectorUnreachable, message: msg });
          result = requeueAfter(Math.min(this.ctx.resyncMs, 5_000));
        }
        status.collectorVolume = volume;
        status.tokenSecretName = tokenSecretName(pv);
        if (view) {
          this.fromCollector(pv, status, view, set);
          await this.plan(pv, status, api, volume, token);
        }
      }
    } catch (err) {
      failure = err;
    }
    // One status write, also after a failed step (its condition says what failed), and
    // never in place of the step's error.
    if (!sameJson(before, status)) {
      await replaceStatus(this.ctx, PLURALS.ProtectedVolume, { ...pv, status });
      for (const t of transitions) {
        const warn = (t.type === PV_CONDITION_DEGRADED && t.c.status === 'True') || (t.type !== PV_CONDITION_DEGRADED && t.c.status === 'False');
        await this.ctx.events.record(eventTarget(KIND, pv), warn ? 'Warning' : 'Normal', t.c.reason, `${t.type}=${t.c.status}: ${t.c.message}`);
      }
    }
    this.ctx.metrics?.protectedVolume(namespace, name, { ...status, ...(pv.spec.rpoTargetSeconds !== undefined ? { rpoTargetSeconds: pv.spec.rpoTargetSeconds } : {}) });
    if (failure) throw failure;
    return result;
  }

  private fromCollector(pv: ProtectedVolume, status: ProtectedVolumeStatus, v: VolumeStatusView, set: (type: string, c: ConditionInput) => void): void {
    status.durableSeq = Number(v.durableSeq);
    status.journalBytes = Number(v.journalBytes);
    if (v.durableSeq > 0n) {
      status.latestDurableTime = formatNs(v.durableTime);
      status.protectedSince ??= formatNs(v.windowOldest || v.durableTime);
    }
    if (v.windowNewest > 0n) status.restorableWindow = { from: formatNs(v.windowOldest), to: formatNs(v.windowNewest) };
    const writer = writerOf(v);
    status.durability = writer.durability ?? pv.spec.durability ?? DEFAULT_DURABILITY;
    const lag = lagSecondsOf(v, writer);
    status.lagSeconds = lag;
    const target = pv.spec.rpoTargetSeconds;
    status.rpoMet = target === undefined ? undefined : lag <= target;
    set(PV_CONDITION_READY, { type: PV_CONDITION_READY, status: 'True', reason: 'Registered', message: `volume ${v.volume} registered on the collector; the node side streams with the token in Secret ${status.tokenSecretName}` });
    if (!v.writerConnected) {
      set(PV_CONDITION_PROTECTED, { type: PV_CONDITION_PROTECTED, status: 'False', reason: PvReasons.WaitingForWriter, message: 'no node is streaming this volume to the collector; writes are not protected until its data path connects' });
    } else if (v.detail.resendingSinceSeq !== undefined) {
      set(PV_CONDITION_PROTECTED, { type: PV_CONDITION_PROTECTED, status: 'False', reason: PvReasons.Resyncing, message: `the node is resending the volume (since seq ${String(v.detail.resendingSinceSeq)}); instants in that span are not exact until it ends` });
    } else {
      set(PV_CONDITION_PROTECTED, { type: PV_CONDITION_PROTECTED, status: 'True', reason: PvReasons.Streaming, message: `streaming; durable up to seq ${v.durableSeq}` });
    }
    if (v.writerConnected && writer.problem) {
      set(PV_CONDITION_DEGRADED, { type: PV_CONDITION_DEGRADED, status: 'True', reason: writer.problem.reason, message: `the node reports: ${writer.problem.message}` });
    } else if (target !== undefined && lag > target) {
      set(PV_CONDITION_DEGRADED, { type: PV_CONDITION_DEGRADED, status: 'True', reason: PvReasons.LagOverTarget, message: `the collector trails the volume by ${lag.toFixed(1)} s, over the RPO target of ${target} s; raise the shipping bandwidth or lower the write rate` });
    } else {
      set(PV_CONDITION_DEGRADED, { type: PV_CONDITION_DEGRADED, status: 'False', reason: PvReasons.AsExpected, message: 'as expected' });
    }
  }

  /**
   * The planner's bandwidth for the RPO target (GetPlan over the retained history). A plan
   * that cannot be made (no history yet, an older collector) leaves the fields unset: it
   * informs, it never blocks protection.
   */
  private async plan(pv: ProtectedVolume, status: ProtectedVolumeStatus, api: CollectorApi, volume: string, token: string): Promise<void> {
    const target = pv.spec.rpoTargetSeconds;
    if (target === undefined || status.durableSeq === undefined || status.durableSeq === 0) return;
    try {
      const p = await api.plan(volume, token, { rpo: `${target}s` });
      const b = p.rpo?.recommendedBandwidth;
      if (b === undefined || !Number.isFinite(b)) return;
      status.recommendedBandwidthBytesPerSecond = Math.ceil(b);
      const cap = pv.spec.shipping?.bandwidthBytesPerSecond ?? 0;
      status.linkMeetsRpo = cap === 0 || cap >= b;
    } catch (err) {
      if (!isRewindError(err)) throw err;
    }
  }

  private async readPvc(namespace: string, name: string): Promise<k8s.V1PersistentVolumeClaim | undefined> {
    try {
      return await this.ctx.core.readNamespacedPersistentVolumeClaim({ namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The Secret holding the volume's token: made once, then read; owned by the ProtectedVolume. */
  private async ensureTokenSecret(pv: ProtectedVolume, volume: string): Promise<string> {
    const namespace = pv.metadata.namespace!;
    const name = tokenSecretName(pv);
    try {
      const s = await this.ctx.core.readNamespacedSecret({ namespace, name });
      const t = s.data?.[TOKEN_KEY];
      if (t) return Buffer.from(t, 'base64').toString('utf8');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const token = crypto.randomBytes(32).toString('base64url');
    await this.ctx.core.createNamespacedSecret({
      namespace,
      body: {
        metadata: {
          name,
          namespace,
          labels: { 'app.kubernetes.io/managed-by': 'rewind-controller', 'cdp.rewind.dev/protected-volume': pv.metadata.name! },
          ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: pv.metadata.name!, uid: pv.metadata.uid!, controller: true }],
        },
        type: 'Opaque',
        stringData: { [TOKEN_KEY]: token, volume, collector: this.ctx.collectors.get(pv.spec.collector?.address).address },
      },
    });
    return token;
  }
}

function pvcSize(pvc: k8s.V1PersistentVolumeClaim): bigint {
  const q = pvc.status?.capacity?.storage ?? pvc.spec?.resources?.requests?.storage;
  if (!q) return 0n;
  return parseByteQuantity(String(q));
}

export interface WriterReport {
  /** ns of the newest entry the node has made (journaled), as it last told the collector. */
  latestTimeNs?: bigint;
  latestSeq?: bigint;
  durability?: ProtectedVolumeStatus['durability'];
  /** A condition the node reports (shipper.ts problem): PascalCase reason and what it means. */
  problem?: { reason: string; message: string };
}

/** What the node side last reported about itself through the collector, when it did. */
export function writerOf(v: VolumeStatusView): WriterReport {
  const w = v.detail.writer as { latestTimeNs?: string; latestSeq?: string; durability?: string; problem?: string; problemMessage?: string } | undefined;
  if (!w) return {};
  return {
    // Only a well-formed reason becomes a condition reason (the API server checks its form).
    ...(w.problem && /^[A-Z][A-Za-z0-9]{0,63}$/.test(w.problem) ? { problem: { reason: w.problem, message: w.problemMessage || w.problem } } : {}),
    ...(w.latestTimeNs ? { latestTimeNs: BigInt(w.latestTimeNs) } : {}),
    ...(w.latestSeq ? { latestSeq: BigInt(w.latestSeq) } : {}),
    ...(w.durability === 'async' || w.durability === 'flush-sync' || w.durability === 'sync' ? { durability: w.durability } : {}),
  };
}

/**
 * How far the collector trails the volume: the age of the oldest entry the node has made
 * that the collector does not hold yet (newest made − newest durable, in time), 0 when it
 * holds everything the node reported.
 */
export function lagSecondsOf(v: VolumeStatusView, w: WriterReport): number {
  if (w.latestSeq === undefined || w.latestTimeNs === undefined || w.latestSeq <= v.durableSeq) return 0;
  const ns = w.latestTimeNs - v.durableTime;
  return ns > 0n ? Number(ns / 1_000_000n) / 1000 : 0;
}
