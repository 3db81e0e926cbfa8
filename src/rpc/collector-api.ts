import fsp from 'node:fs/promises';
import type * as grpc from '@grpc/grpc-js';
import { collectorClient, type CollectorClient, type CollectorTarget } from './transport.js';
import type {
  DeleteMarkResponseMsg,
  DeleteVolumeResponseMsg,
  DiffResponseMsg,
  ListMarksResponseMsg,
  ListVolumesResponseMsg,
  PlanResponseMsg,
  MarkMsg,
  RegisterVolumeResponseMsg,
  RestoreChunkMsg,
  VolumeStatusMsg,
} from './messages.js';
import { toPointMsg } from './points.js';
import { fromGrpcError } from './status.js';
import type { MarkInfo, PointSpec, StoreExtent, VolumeStatusInfo } from './api-types.js';

/** GetPlan's query: every field optional text (docs/planner.md). */
export interface PlanQueryText { from?: string; to?: string; rpo?: string; link?: string; outage?: string; bandwidth?: string; basis?: 'written' | 'unique' }

/**
 * GetPlan's answer, the fields a controller reads named (the rest as docs/planner.md says):
 * ns times as decimal strings, bytes and bytes per second as numbers.
 */
export interface PlanView {
  volume: string;
  window: { from: string; to: string; intervalNs: string; intervals: number; seconds: number };
  bytes: { written: number; unique: number; uniqueByInterval: number; coalescingSavings: number; savingsRatio: number; approximate: boolean };
  rates: { written: { peak: number; p95: number; mean: number }; unique: { peak: number; p95: number; mean: number } };
  rpo?: { targetSeconds: number; recommendedBandwidth: number; maxLagSeconds: number; curve: Array<{ t: string; queuedBytes: number; lagSeconds: number }> };
  links?: { linkBandwidth: number; count: number };
  bandwidth?: { bandwidth: number; achievedRpoSeconds: number; keepsUp: boolean; finalQueuedBytes: number };
  resync?: { outageSeconds: number; resyncBytes: number; backlogBytes: number; bandwidth?: number; seconds?: number | null; worstStart: string };
  warnings: string[];
  [section: string]: unknown;
}

/** A volume's status as a client sees it: the store's view plus whether a shipper is attached. */
export type VolumeStatusView = Omit<VolumeStatusInfo, 'name' | 'detail'> & { volume: string; writerConnected: boolean; detail: Record<string, unknown> };

export interface RestoreChunkView {
  offset: bigint;
  /** Set for data; absent for a zero run. */
  data?: Buffer;
  zeroLength: bigint;
  doneBytes: bigint;
  volumeSize: bigint;
}

const statusView = (s: VolumeStatusMsg): VolumeStatusView => ({
  volume: s.volume,
  size: BigInt(s.size),
  generation: BigInt(s.generation),
  durableSeq: BigInt(s.durable_seq),
  durableTime: BigInt(s.durable_time_ns),
  windowOldest: BigInt(s.window_oldest_ns),
  windowNewest: BigInt(s.window_newest_ns),
  journalBytes: BigInt(s.journal_bytes),
  writerConnected: s.writer_connected,
  detail: s.detail_json ? (JSON.parse(s.detail_json) as Record<string, unknown>) : {},
});

const markView = (m: MarkMsg): MarkInfo => ({ name: m.name, seq: BigInt(m.seq), time: BigInt(m.time_ns), ...(m.id ? { id: m.id } : {}) });

export interface RegisterVolumeResult {
  status: VolumeStatusView;
  /** The volume did not exist and was created. */
  created: boolean;
  /** The volume existed with another token, which was replaced. */
  tokenRotated: boolean;
}

/**
 * Typed client of the collector's API for the CLI and the controller: bigint in and out,
 * errors as RewindError with the collector's REWIND_ERR_* code.
 */
export class CollectorApi {
  private readonly c: CollectorClient;

  constructor(private readonly target: CollectorTarget) {
    this.c = collectorClient(target);
  }

  close(): void {
    this.c.close();
  }

  private unary<T>(method: string, req: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) =>
      (this.c[method] as (r: unknown, cb: (e: unknown, v: T) => void) => void).call(this.c, req, (e, v) =>
        e ? reject(fromGrpcError(e, `${method} on collector ${this.target.address}`)) : resolve(v),
      ),
    );
  }

  private async *stream<T>(method: string, req: unknown): AsyncGenerator<T> {
    const call = (this.c[method] as (r: unknown) => grpc.ClientReadableStream<T>).call(this.c, req);
    try {
      for await (const m of call) yield m as T;
    } catch (err) {
      throw fromGrpcError(err, `${method} on collector ${this.target.address}`);
    } finally {
      call.cancel();
    }
  }

  /**
   * Name a point (default now). With `id`, idempotent: a mark that already has the id is
   * returned as it was made (same seq and time), so retrying never makes a second one.
   */
  async createMark(volume: string, token: string, name: string, at?: PointSpec, opts: { id?: string } = {}): Promise<MarkInfo> {
    return markView(await this.unary<MarkMsg>('CreateMark', { volume, token, name, at: at ? toPointMsg(at) : null, id: opts.id ?? '' }));
  }

  /** Delete the mark with this id; `{ deleted: false }` when there was none (idempotent). */
  async deleteMark(volume: string, token: string, id: string): Promise<{ deleted: boolean }> {
    const r = await this.unary<DeleteMarkResponseMsg>('DeleteMark', { volume, token, id, name: '' });
    return { deleted: r.deleted };
  }

  /**
   * Create the volume with `token`, or confirm it; a different token replaces the old one
   * (needs the admin token). `size` may be 0n for a volume that exists. `adminToken` may
   * be '' for a collector that runs without one (create and confirm only).
   */
  async registerVolume(adminToken: string, volume: string, size: bigint, token: string): Promise<RegisterVolumeResult> {
    const r = await this.unary<RegisterVolumeResponseMsg>('RegisterVolume', { admin_token: adminToken, volume, size: size.toString(), token });
    return { status: statusView(r.volume), created: r.created, tokenRotated: r.token_rotated };
  }

  /** Remove the volume and all its history; `{ deleted: false }` when there was none (idempotent). */
  async deleteVolume(adminToken: string, volume: string): Promise<{ deleted: boolean }> {
    const r = await this.unary<DeleteVolumeResponseMsg>('DeleteVolume', { admin_token: adminToken, volume });
    return { deleted: r.deleted };
  }

  async listMarks(volume: string, token: string): Promise<MarkInfo[]> {
    return (await this.unary<ListMarksResponseMsg>('ListMarks', { volume, token })).marks.map(markView);
  }

  async status(volume: string, token: string): Promise<VolumeStatusView> {
    return statusView(await this.unary<VolumeStatusMsg>('GetVolumeStatus', { volume, token }));
  }

  /**
   * The planner's plan for the volume (GetPlan; docs/planner.md). Query fields are text as
   * on the HTTP API (rpo "30s", bandwidth "100Mbit", from "2h ago" or mark:NAME); the
   * collector refuses bad ones with INVALID_ARGUMENT.
   */
  async plan(volume: string, token: string, query: PlanQueryText = {}): Promise<PlanView> {
    const r = await this.unary<PlanResponseMsg>('GetPlan', { volume, token, ...query });
    return JSON.parse(r.plan_json) as PlanView;
  }

  async listVolumes(): Promise<VolumeStatusView[]> {
    return (await this.unary<ListVolumesResponseMsg>('ListVolumes', {})).volumes.map(statusView);
  }

  async diff(volume: string, token: string, from: PointSpec, to: PointSpec): Promise<StoreExtent[]> {
    const out: StoreExtent[] = [];
    for await (const m of this.stream<DiffResponseMsg>('Diff', { volume, token, from: toPointMsg(from), to: toPointMsg(to) })) {
      for (const e of m.extents) out.push({ offset: BigInt(e.offset), length: BigInt(e.length), zero: e.zero });
    }
    return out;
  }

  /** The image as of `at` (or only what changed since `changedSince`), ascending. */
  async *restore(volume: string, token: string, at: PointSpec, opts: { changedSince?: PointSpec } = {}): AsyncGenerator<RestoreChunkView> {
    const req = { volume, token, at: toPointMsg(at), changed_since: opts.changedSince ? toPointMsg(opts.changedSince) : null };
    for await (const c of this.stream<RestoreChunkMsg>('Restore', req)) {
      const zeroLength = BigInt(c.zero_length);
      yield { offset: BigInt(c.offset), data: zeroLength > 0n ? undefined : c.data, zeroLength, doneBytes: BigInt(c.done_bytes), volumeSize: BigInt(c.volume_size) };
    }
  }

  /**
   * Restore into a file or block device. A full restore into a new file leaves zero runs
   * as holes; with `changedSince` (in-place revert) zero runs are written explicitly.
   */
  async restoreToFile(volume: string, token: string, at: PointSpec, file: string, opts: { changedSince?: PointSpec; onProgress?: (done: bigint, total: bigint) => void } = {}): Promise<{ bytes: bigint }> {
    const fh = await fsp.open(file, opts.changedSince ? 'r+' : 'w');
    let bytes = 0n;
    try {
      let sized = false;
      for await (const c of this.restore(volume, token, at, opts)) {
        if (!sized && !opts.changedSince) {
          await fh.truncate(Number(c.volumeSize));
          sized = true;
        }
        if (c.data) {
          await fh.write(c.data, 0, c.data.length, Number(c.offset));
          bytes += BigInt(c.data.length);
        } else if (opts.changedSince) {
          const zeros = Buffer.alloc(Math.min(Number(c.zeroLength), 4 << 20));
          for (let o = 0n; o < c.zeroLength; o += BigInt(zeros.length)) {
            const n = Number(c.zeroLength - o < BigInt(zeros.length) ? c.zeroLength - o : BigInt(zeros.length));
            await fh.write(zeros, 0, n, Number(c.offset + o));
          }
        }
        opts.onProgress?.(c.doneBytes, c.volumeSize);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { bytes };
  }
}
