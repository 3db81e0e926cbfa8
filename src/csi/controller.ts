import fsp from 'node:fs/promises';
import type { Logger } from '../core/logger.js';
import { fsTypeOf, requireCapabilities, unsupportedReason } from './capability.js';
import { aborted, alreadyExists, failedPrecondition, invalidArgument, notFound, outOfRange } from './csi-error.js';
import type { ControllerState, VolumeRecord } from './controller-state.js';
import type { CapacityRange, CsiVolume, Topology, VolumeCapability } from './messages.js';
import { TOPOLOGY_KEY } from './proto.js';
import { CTX_NODE, CTX_SIZE, checkParameters } from './volume-params.js';
import { volumeIdFor } from './volume-id.js';
import type { VolumeLocks } from './volume-locks.js';

/** A volume with no capacity_range gets this much (sparse: it costs what is written). */
export const DEFAULT_SIZE = 1 << 30;
/** Sizes are whole 4 KiB: the NBD export, the loop device and every filesystem agree on it. */
const UNIT = 4096;

/** What the node side on this process offers the controller (mode both): freeing a local volume. */
export interface LocalVolumes {
  isStaged(id: string): Promise<boolean>;
  free(id: string): Promise<void>;
}

export interface ControllerOptions {
  state: ControllerState;
  locks: VolumeLocks;
  stateDir: string;
  /** This process's node, when it also runs the node service: volumes without a topology requirement land here. */
  nodeId?: string;
  local?: LocalVolumes;
  logger: Logger;
}

type Req = Record<string, any>;

export function controllerService(o: ControllerOptions): Record<string, (req: Req) => Promise<object>> {
  const toCsi = (v: VolumeRecord): CsiVolume => ({
    volume_id: v.id,
    capacity_bytes: String(v.sizeBytes),
    volume_context: v.context,
    accessible_topology: [{ segments: { [TOPOLOGY_KEY]: v.node } }],
  });

  return {
    async ControllerGetCapabilities() {
      const rpc = (type: string) => ({ rpc: { type } });
      return { capabilities: ['CREATE_DELETE_VOLUME', 'LIST_VOLUMES', 'GET_CAPACITY', 'SINGLE_NODE_MULTI_WRITER'].map(rpc) };
    },

    async CreateVolume(req: Req) {
      const name: string = req.name ?? '';
      if (!name) throw invalidArgument('CreateVolume: name is required (the CO\'s idempotency key, e.g. the PV name)');
      const caps = requireCapabilities(req.volume_capabilities as VolumeCapability[], 'CreateVolume');
      if (req.volume_content_source) {
        throw invalidArgument('CreateVolume: a content source (snapshot or volume) is not supported yet; restore history into a new volume with a VolumeRestore instead');
      }
      const params = checkParameters((req.parameters ?? {}) as Record<string, string>);
      const size = pickSize(req.capacity_range as CapacityRange | undefined);
      const id = volumeIdFor(name);
      return o.locks.with(id, 'CreateVolume', async () => {
        const have = o.state.get(id);
        if (have) {
          const want = req.capacity_range as CapacityRange | undefined;
          const required = Number(want?.required_bytes ?? 0);
          const limit = Number(want?.limit_bytes ?? 0);
          if (have.sizeBytes < required || (limit > 0 && have.sizeBytes > limit)) {
            throw alreadyExists(`CreateVolume: volume "${name}" exists with ${have.sizeBytes} bytes, which the capacity range asked now (${required}..${limit || 'any'}) does not fit; use another name or delete the volume first`);
          }
          if (JSON.stringify(stripOwn(have.context)) !== JSON.stringify(params)) {
            throw alreadyExists(`CreateVolume: volume "${name}" exists with other parameters; use another name or delete the volume first`);
          }
          return { volume: toCsi(have) };
        }
        const node = pickNode(req.accessibility_requirements as { requisite?: Topology[]; preferred?: Topology[] } | undefined, o.nodeId);
        const rec: VolumeRecord = {
          id,
          name,
          sizeBytes: size,
          node,
          context: { ...params, [CTX_SIZE]: String(size), [CTX_NODE]: node },
          createdAt: new Date().toISOString(),
        };
        await o.state.put(rec);
        o.logger.info('volume created', { volume: id, size, node, fsTypes: caps.map(fsTypeOf) });
        return { volume: toCsi(rec) };
      });
    },

    async DeleteVolume(req: Req) {
      const id: string = req.volume_id ?? '';
      if (!id) throw invalidArgument('DeleteVolume: volume_id is required');
      return o.locks.with(id, 'DeleteVolume', async () => {
        if (o.local && (await o.local.isStaged(id))) {
          throw failedPrecondition(`DeleteVolume: volume "${id}" is still staged on this node; NodeUnstageVolume it first`);
        }
        // The backing file and spool are this node's to free; its history on the collector
        // is left to the collector's retention, so a deleted volume can still be restored.
        await o.local?.free(id);
        if (o.state.get(id)) {
          await o.state.remove(id);
          o.logger.info('volume deleted', { volume: id });
        }
        return {};
      });
    },

    async ValidateVolumeCapabilities(req: Req) {
      const id: string = req.volume_id ?? '';
      if (!id) throw invalidArgument('ValidateVolumeCapabilities: volume_id is required');
      const caps = req.volume_capabilities as VolumeCapability[] | undefined;
      if (!caps || caps.length === 0) throw invalidArgument('ValidateVolumeCapabilities: volume_capabilities must name at least one capability');
      const v = o.state.get(id);
      if (!v) throw notFound(`ValidateVolumeCapabilities: no volume "${id}"; was it deleted?`);
      const why = caps.map(unsupportedReason).find((r) => r !== undefined);
      if (why) return { message: why };
      return { confirmed: { volume_context: req.volume_context ?? {}, volume_capabilities: caps, parameters: req.parameters ?? {} } };
    },

    async ListVolumes(req: Req) {
      const all = o.state.list();
      const max = Number(req.max_entries ?? 0);
      if (max < 0) throw invalidArgument('ListVolumes: max_entries must not be negative');
      const tok: string = req.starting_token ?? '';
      const start = tok === '' ? 0 : Number(tok);
      if (!Number.isInteger(start) || start < 0 || start > all.length) {
        throw aborted(`ListVolumes: starting_token "${tok}" is not one this driver issued (or the list shrank past it); list again from the start`);
      }
      const end = max > 0 ? Math.min(all.length, start + max) : all.length;
      return {
        entries: all.slice(start, end).map((v) => ({ volume: toCsi(v) })),
        next_token: end < all.length ? String(end) : '',
      };
    },

    async GetCapacity(req: Req) {
      const caps = (req.volume_capabilities ?? []) as VolumeCapability[];
      if (caps.some((c) => unsupportedReason(c) !== undefined)) return { available_capacity: '0' };
      const seg = (req.accessible_topology as Topology | undefined)?.segments?.[TOPOLOGY_KEY];
      // Only this node's state dir can be measured here; another node's capacity is its own plugin's to report.
      if (seg !== undefined && seg !== o.nodeId) return { available_capacity: '0' };
      const st = await fsp.statfs(o.stateDir);
      return { available_capacity: String(st.bavail * st.bsize) };
    },
  };
}

function stripOwn(ctx: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx)) if (k !== CTX_SIZE && k !== CTX_NODE) out[k] = v;
  return out;
}

function pickSize(range: CapacityRange | undefined): number {
  const required = Number(range?.required_bytes ?? 0);
  const limit = Number(range?.limit_bytes ?? 0);
  if (required < 0 || limit < 0) throw outOfRange('CreateVolume: capacity_range must not be negative');
  if (limit > 0 && required > limit) throw outOfRange(`CreateVolume: required_bytes ${required} is more than limit_bytes ${limit}`);
  let size = required > 0 ? Math.ceil(required / UNIT) * UNIT : DEFAULT_SIZE;
  if (limit > 0 && size > limit) size = Math.floor(limit / UNIT) * UNIT;
  if (size < required || size === 0) throw outOfRange(`CreateVolume: no multiple of ${UNIT} bytes lies in ${required}..${limit}; widen the capacity range`);
  return size;
}

/**
 * The local model puts the volume on one node. With WaitForFirstConsumer the provisioner
 * names the scheduled node first in `preferred`; with Immediate binding there is no
 * choice to follow, and the volume goes to this process's node when it has one.
 */
function pickNode(req: { requisite?: Topology[]; preferred?: Topology[] } | undefined, own: string | undefined): string {
  for (const t of [...(req?.preferred ?? []), ...(req?.requisite ?? [])]) {
    const n = t.segments?.[TOPOLOGY_KEY];
    if (n) return n;
  }
  if ((req?.requisite?.length ?? 0) > 0) {
    throw invalidArgument(`CreateVolume: the requisite topology names no ${TOPOLOGY_KEY}; a Rewind volume is placed by that key only`);
  }
  if (own) return own;
  throw invalidArgument(`CreateVolume: no node to place the volume on; use a StorageClass with volumeBindingMode: WaitForFirstConsumer so the provisioner names the workload's node (${TOPOLOGY_KEY})`);
}
