import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { authorizedVolume, checkVolumeName, tokenOf } from './auth.js';
import type { WriterInfo, WriterRegistry } from './append-handler.js';
import type {
  CreateMarkRequestMsg,
  DeleteMarkRequestMsg,
  DeleteMarkResponseMsg,
  DiffRequestMsg,
  DiffResponseMsg,
  GetPlanRequestMsg,
  GetVolumeStatusRequestMsg,
  ListMarksRequestMsg,
  ListMarksResponseMsg,
  ListVolumesResponseMsg,
  MarkMsg,
  PlanResponseMsg,
  RestoreChunkMsg,
  RestoreRequestMsg,
  VolumeStatusMsg,
} from '../../rpc/messages.js';
import { toPointSpec } from '../../rpc/points.js';
import { toStatus } from '../../rpc/status.js';
import type { MarkInfo, StorePort, VolumePort } from './store-port.js';

/** Extents per Diff message: keeps each message far below the 4 MiB default limit. */
export const DIFF_EXTENTS_PER_MESSAGE = 4096;

export interface QueryDeps {
  store: StorePort;
  registry: WriterRegistry;
  logger: Logger;
}

export function unary<Req, Res>(fn: (req: Req, md: grpc.Metadata, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, cb) => {
    fn(call.request, call.metadata, call).then(
      (res) => cb(null, res),
      (err) => cb(toStatus(err)),
    );
  };
}

function serverStream<Req, Res>(fn: (req: Req, md: grpc.Metadata, write: (m: Res) => Promise<void>, call: grpc.ServerWritableStream<Req, Res>) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    // Honour HTTP/2 flow control: wait for 'drain' when grpc-js says its buffer is full,
    // so a slow reader of a big restore slows the restore instead of filling memory.
    const write = (m: Res): Promise<void> =>
      new Promise((resolve, reject) => {
        if (call.cancelled) return reject(new Error('cancelled by the client'));
        if (call.write(m)) return resolve();
        const onDrain = () => { call.off('cancelled', onCancel); resolve(); };
        const onCancel = () => { call.off('drain', onDrain); reject(new Error('cancelled by the client')); };
        call.once('drain', onDrain);
        call.once('cancelled', onCancel);
      });
    fn(call.request, call.metadata, write, call).then(
      () => call.end(),
      (err) => {
        if (!call.cancelled) call.emit('error', toStatus(err));
      },
    );
  };
}

const markMsg = (volume: string, m: MarkInfo): MarkMsg => ({ volume, name: m.name, seq: m.seq.toString(), time_ns: m.time.toString(), id: m.id ?? '' });

/** The volume's status; with its writer's own report (detail.writer) while one is connected. */
export async function statusMsg(vol: VolumePort, writer: WriterInfo | undefined): Promise<VolumeStatusMsg> {
  const s = await vol.status();
  const detail = { ...(s.detail ?? {}), ...(writer ? { writer } : {}) };
  return {
    volume: s.name,
    size: s.size.toString(),
    generation: s.generation.toString(),
    durable_seq: s.durableSeq.toString(),
    durable_time_ns: s.durableTime.toString(),
    window_oldest_ns: s.windowOldest.toString(),
    window_newest_ns: s.windowNewest.toString(),
    journal_bytes: s.journalBytes.toString(),
    writer_connected: writer !== undefined,
    detail_json: JSON.stringify(detail, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
  };
}

export function queryHandlers(deps: QueryDeps): grpc.UntypedServiceImplementation {
  const { store } = deps;
  const vol = (name: string, token: string, md: grpc.Metadata) => authorizedVolume(store, name, tokenOf(token, md));

  return {
    CreateMark: unary<CreateMarkRequestMsg, MarkMsg>(async (req, md) => {
      const v = await vol(req.volume, req.token, md);
      const m = await v.addMark(req.name, req.at?.at ? toPointSpec(req.at) : undefined, req.id ? { id: req.id } : {});
      return markMsg(v.name, m);
    }),

    DeleteMark: unary<DeleteMarkRequestMsg, DeleteMarkResponseMsg>(async (req, md) => {
      const v = await vol(req.volume, req.token, md);
      if (!req.id && !req.name) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `DeleteMark on volume "${v.name}" names no mark; give its id (or its name)`);
      return { deleted: await v.deleteMark(req.id ? { id: req.id } : { name: req.name }) };
    }),

    ListMarks: unary<ListMarksRequestMsg, ListMarksResponseMsg>(async (req, md) => {
      const v = await vol(req.volume, req.token, md);
      const marks = await v.marks();
      return { marks: marks.map((m) => markMsg(v.name, m)) };
    }),

    GetVolumeStatus: unary<GetVolumeStatusRequestMsg, VolumeStatusMsg>(async (req, md) => {
      const v = await vol(req.volume, req.token, md);
      return statusMsg(v, deps.registry.writerInfo(v.name));
    }),

    GetPlan: unary<GetPlanRequestMsg, PlanResponseMsg>(async (req, md) => {
      const v = await vol(req.volume, req.token, md);
      if (!v.plan) throw new RewindError(ErrorCodes.UNSUPPORTED, `this collector's store has no planner for volume "${v.name}"`);
      const { from, to, rpo, link, outage, bandwidth, basis } = req;
      return { plan_json: JSON.stringify(v.plan({ from, to, rpo, link, outage, bandwidth, basis }), (_k, x) => (typeof x === 'bigint' ? x.toString() : x)) };
    }),

    // Listing names and sizes needs no volume token: it is for the controller and the
    // operator; mTLS (when on) still decides who may call at all.
    ListVolumes: unary<unknown, ListVolumesResponseMsg>(async () => {
      const out: VolumeStatusMsg[] = [];
      for (const name of await store.volumeNames()) {
        checkVolumeName(name);
        const v = await store.volume(name);
        if (v) out.push(await statusMsg(v, deps.registry.writerInfo(name)));
      }
      return { volumes: out };
    }),

    Restore: serverStream<RestoreRequestMsg, RestoreChunkMsg>(async (req, md, write) => {
      const v = await vol(req.volume, req.token, md);
      const at = toPointSpec(req.at);
      const changedSince = req.changed_since?.at ? toPointSpec(req.changed_since) : undefined;
      const size = v.size.toString();
      let done = 0n;
      await v.restore(
        at,
        {
          write: async (offset, data) => {
            done = offset + BigInt(data.length);
            await write({ offset: offset.toString(), data, zero_length: 0, done_bytes: done.toString(), volume_size: size });
          },
          zero: async (offset, length) => {
            done = offset + length;
            await write({ offset: offset.toString(), data: Buffer.alloc(0), zero_length: length.toString(), done_bytes: done.toString(), volume_size: size });
          },
        },
        { changedSince },
      );
    }),

    Diff: serverStream<DiffRequestMsg, DiffResponseMsg>(async (req, md, write) => {
      const v = await vol(req.volume, req.token, md);
      const extents = await v.diff(toPointSpec(req.from), toPointSpec(req.to));
      for (let i = 0; i < extents.length; i += DIFF_EXTENTS_PER_MESSAGE) {
        const page = extents.slice(i, i + DIFF_EXTENTS_PER_MESSAGE);
        await write({ extents: page.map((e) => ({ offset: e.offset.toString(), length: e.length.toString(), zero: e.zero ?? false })) });
      }
      if (extents.length === 0) await write({ extents: [] });
    }),
  };
}

export { serverStream };
