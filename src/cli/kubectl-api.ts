/**
 * The API calls the plugins make, each taking a KubeConfig so the control-plane tests call
 * them against a real API server directly. Objects are built here too, once, so the plugins'
 * dry-run output and what they send are the same object.
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import {
  API_VERSION,
  GROUP,
  PLURALS,
  VERSION,
  type ProtectedVolume,
  type RestorePoint,
  type VolumeRestore,
  type VolumeRestoreSpec,
} from '../api/index.js';

export type DryRun = 'none' | 'client' | 'server';
export const DRY_RUN_VALUES: readonly DryRun[] = ['none', 'client', 'server'];

/** Who made the change, in managedFields (kubectl's plugins name themselves there too). */
export const FIELD_MANAGER = 'kubectl-rewind';

interface List<T> {
  items: T[];
}

function api(kc: KubeConfig): CustomObjectsApi {
  return kc.makeApiClient(CustomObjectsApi);
}

export function restorePointObject(name: string, opts: { namespace?: string; volume: string; at?: string }): RestorePoint {
  return {
    apiVersion: API_VERSION,
    kind: 'RestorePoint',
    metadata: { name, ...(opts.namespace ? { namespace: opts.namespace } : {}) },
    spec: { volume: opts.volume, ...(opts.at ? { at: opts.at } : {}) },
  };
}

/**
 * A VolumeRestore; without a name, the API server picks one from generateName
 * (`<volume>-restore-xxxxx`), so repeated restores of one volume never collide.
 */
export function volumeRestoreObject(opts: { name?: string; namespace?: string; spec: VolumeRestoreSpec }): VolumeRestore {
  return {
    apiVersion: API_VERSION,
    kind: 'VolumeRestore',
    metadata: {
      ...(opts.name ? { name: opts.name } : { generateName: `${opts.spec.volume}-restore-` }),
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
    },
    spec: opts.spec,
  };
}

async function create<T>(kc: KubeConfig, namespace: string, plural: string, body: T, dryRun: 'none' | 'server'): Promise<T> {
  return (await api(kc).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural,
    body,
    fieldManager: FIELD_MANAGER,
    ...(dryRun === 'server' ? { dryRun: 'All' } : {}),
  })) as T;
}

/** Creates (or with dryRun 'server', has the API server validate) a RestorePoint. */
export function createRestorePoint(kc: KubeConfig, namespace: string, rp: RestorePoint, dryRun: 'none' | 'server' = 'none'): Promise<RestorePoint> {
  return create(kc, namespace, PLURALS.RestorePoint, rp, dryRun);
}

export function createVolumeRestore(kc: KubeConfig, namespace: string, vr: VolumeRestore, dryRun: 'none' | 'server' = 'none'): Promise<VolumeRestore> {
  return create(kc, namespace, PLURALS.VolumeRestore, vr, dryRun);
}

export async function getVolumeRestore(kc: KubeConfig, namespace: string, name: string): Promise<VolumeRestore> {
  return (await api(kc).getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURALS.VolumeRestore, name })) as VolumeRestore;
}

async function list<T>(kc: KubeConfig, namespace: string, plural: string): Promise<T[]> {
  return ((await api(kc).listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural })) as List<T>).items;
}

/** The namespace's ProtectedVolumes; with pvc, only the ones protecting it. */
export async function listProtectedVolumes(kc: KubeConfig, namespace: string, pvc?: string): Promise<ProtectedVolume[]> {
  const all = await list<ProtectedVolume>(kc, namespace, PLURALS.ProtectedVolume);
  return (pvc === undefined ? all : all.filter((pv) => pv.spec?.pvcName === pvc)).sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
}

/** The namespace's RestorePoints (all of them; see restorePointsOf for one volume's). */
export function listRestorePoints(kc: KubeConfig, namespace: string): Promise<RestorePoint[]> {
  return list<RestorePoint>(kc, namespace, PLURALS.RestorePoint);
}
