import * as k8s from '@kubernetes/client-node';
import { API_VERSION, GROUP, PLURALS, VERSION } from '../api/index.js';
import type { Logger } from '../core/logger.js';
import { CollectorApi } from '../rpc/collector-api.js';
import type { CollectorTarget } from '../rpc/transport.js';
import { isConflict, isNotFound } from './runtime/api-errors.js';
import type { EventRecorder } from './runtime/events.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';

/** How the controller reaches collectors: one client per address, the admin credential, TLS. */
export interface CollectorAccess {
  /** Used when a ProtectedVolume names none. */
  defaultAddress: string;
  adminToken: string;
  target: Omit<CollectorTarget, 'address'>;
}

export class CollectorPool {
  private readonly clients = new Map<string, CollectorApi>();
  constructor(readonly access: CollectorAccess) {}

  get(address?: string): { api: CollectorApi; address: string } {
    const a = address || this.access.defaultAddress;
    let c = this.clients.get(a);
    if (!c) {
      c = new CollectorApi({ ...this.access.target, address: a });
      this.clients.set(a, c);
    }
    return { api: c, address: a };
  }

  /** The transport settings for `address`, for a stream of our own (history writes). */
  target(address?: string): CollectorTarget {
    return { ...this.access.target, address: address || this.access.defaultAddress };
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** Everything a reconciler needs; one per controller process. */
export interface ControllerContext {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  custom: k8s.CustomObjectsApi;
  storage: k8s.StorageV1Api;
  collectors: CollectorPool;
  events: EventRecorder;
  log: Logger;
  /** Injected so tests can move time; ns since the epoch. */
  nowNs(): bigint;
  /** How often a healthy object's status is refreshed from the collector. */
  resyncMs: number;
  /** Gauges of each ProtectedVolume's conditions (rewind controller --metrics); absent: none. */
  metrics?: ControllerMetrics;
}

export type Plural = (typeof PLURALS)[keyof typeof PLURALS];

/** Typed get/replace of our own kinds through CustomObjectsApi; undefined on 404. */
export async function getObject<T>(ctx: ControllerContext, plural: Plural, namespace: string, name: string): Promise<T | undefined> {
  try {
    return (await ctx.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name })) as T;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function listObjects<T>(ctx: ControllerContext, plural: Plural, namespace: string): Promise<T[]> {
  const r = (await ctx.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural })) as { items: T[] };
  return r.items;
}

/** PUT of the whole object: carries metadata.resourceVersion, so a concurrent change is a 409. */
export async function replaceObject<T extends { metadata: k8s.V1ObjectMeta }>(ctx: ControllerContext, plural: Plural, obj: T): Promise<T> {
  return (await ctx.custom.replaceNamespacedCustomObject({
    group: GROUP, version: VERSION, plural, namespace: obj.metadata.namespace!, name: obj.metadata.name!, body: obj,
  })) as T;
}

/** PUT of the status subresource, same optimistic concurrency. */
export async function replaceStatus<T extends { metadata: k8s.V1ObjectMeta }>(ctx: ControllerContext, plural: Plural, obj: T): Promise<T> {
  return (await ctx.custom.replaceNamespacedCustomObjectStatus({
    group: GROUP, version: VERSION, plural, namespace: obj.metadata.namespace!, name: obj.metadata.name!, body: obj,
  })) as T;
}

export function eventTarget(kind: string, obj: { metadata: k8s.V1ObjectMeta }): { apiVersion: string; kind: string; metadata: k8s.V1ObjectMeta } {
  return { apiVersion: API_VERSION, kind, metadata: obj.metadata };
}

/** A JSON-stable comparison, so an unchanged status is not written again. */
export const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * Writes `status` onto the newest version of the object: on a 409 (someone else changed
 * it since it was read) it reads it again and writes again, so a status that reports work
 * already done (a restore's end) is never lost to a concurrent writer.
 */
export async function writeStatusFresh<T extends { metadata: k8s.V1ObjectMeta; status?: unknown }>(ctx: ControllerContext, plural: Plural, namespace: string, name: string, status: T['status'], tries = 8): Promise<T | undefined> {
  for (let i = 0; ; i++) {
    const cur = await getObject<T>(ctx, plural, namespace, name);
    if (!cur) return undefined;
    try {
      return await replaceStatus(ctx, plural, { ...cur, status });
    } catch (err) {
      if (!isConflict(err) || i + 1 >= tries) throw err;
    }
  }
}
