import type * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { authorizedVolume, tokenOf } from './auth.js';
import type {
  BlockMetadataMsg,
  GetMetadataAllocatedRequestMsg,
  GetMetadataDeltaRequestMsg,
  GetMetadataResponseMsg,
} from '../../rpc/messages.js';
import { serverStream } from './query-handlers.js';
import type { StoreExtent, StorePort } from './store-port.js';

/**
 * The CSI SnapshotMetadata service over marks. A snapshot id is "<volume>/<mark>"; the
 * volume token travels in the request's `secrets` map under "token" (CSI's place for
 * credentials) or as `authorization: Bearer` metadata.
 *
 * Extents are VARIABLE_LENGTH, ascending and non-overlapping. `starting_offset` resumes
 * an interrupted stream: extents ending at or before it are skipped and one straddling it
 * is cut to start there, so a client that restarts from (last byte_offset + size_bytes)
 * gets exactly the rest. `max_results` caps BlockMetadata per response message.
 */
export const DEFAULT_MAX_RESULTS = 1024;
export const MAX_MAX_RESULTS = 65536;

export function parseSnapshotId(id: string): { volume: string; mark: string } {
  const slash = id.indexOf('/');
  if (slash <= 0 || slash === id.length - 1) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `snapshot id "${id}" is not "<volume>/<mark>"`);
  }
  return { volume: id.slice(0, slash), mark: id.slice(slash + 1) };
}

/** Clip ascending extents to those past `start`, cutting a straddler. */
export function extentsFrom(extents: StoreExtent[], start: bigint): StoreExtent[] {
  const out: StoreExtent[] = [];
  for (const e of extents) {
    const end = e.offset + e.length;
    if (end <= start) continue;
    out.push(e.offset >= start ? e : { ...e, offset: start, length: end - start });
  }
  return out;
}

async function streamPages(
  extents: StoreExtent[],
  size: bigint,
  req: { starting_offset: string; max_results: number },
  write: (m: GetMetadataResponseMsg) => Promise<void>,
): Promise<void> {
  const start = BigInt(req.starting_offset || '0');
  if (start < 0n || start >= size) {
    throw new RewindError(ErrorCodes.OUT_OF_RANGE, `starting_offset ${start} is outside the volume (0..${size - 1n})`);
  }
  if (req.max_results < 0) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `max_results must not be negative (got ${req.max_results})`);
  const per = Math.min(req.max_results || DEFAULT_MAX_RESULTS, MAX_MAX_RESULTS);
  const rest = extentsFrom(extents, start);
  for (let i = 0; i < rest.length; i += per) {
    const block_metadata: BlockMetadataMsg[] = rest.slice(i, i + per).map((e) => ({ byte_offset: e.offset.toString(), size_bytes: e.length.toString() }));
    await write({ block_metadata_type: 'VARIABLE_LENGTH', volume_capacity_bytes: size.toString(), block_metadata });
  }
}

export function csiSnapshotMetadataHandlers(store: StorePort): grpc.UntypedServiceImplementation {
  return {
    GetMetadataAllocated: serverStream<GetMetadataAllocatedRequestMsg, GetMetadataResponseMsg>(async (req, md, write) => {
      const { volume, mark } = parseSnapshotId(req.snapshot_id);
      const v = await authorizedVolume(store, volume, tokenOf(req.secrets?.token, md));
      await streamPages(await v.allocated({ mark }), v.size, req, write);
    }),
    GetMetadataDelta: serverStream<GetMetadataDeltaRequestMsg, GetMetadataResponseMsg>(async (req, md, write) => {
      const base = parseSnapshotId(req.base_snapshot_id);
      const target = parseSnapshotId(req.target_snapshot_id);
      if (base.volume !== target.volume) {
        throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `base and target snapshots belong to different volumes ("${base.volume}", "${target.volume}")`);
      }
      const v = await authorizedVolume(store, base.volume, tokenOf(req.secrets?.token, md));
      await streamPages(await v.diff({ mark: base.mark }, { mark: target.mark }), v.size, req, write);
    }),
  };
}
