import { ErrorCodes, RewindError } from '../../core/errors.js';
import type { BatchMsg } from '../../rpc/messages.js';

/**
 * What Append streams may hold of the collector, over all clients. Without bounds, each
 * stream kept up to 8 batches queued, 2 groups in the store and 16 more messages buffered
 * by grpc-js (messages of up to 80 MiB), and any number of streams could be opened: 8
 * streams to a store that did not keep up grew the process by 355 MiB
 * (append-limits.test.ts).
 *
 * Worst case with these bounds: totalBytes, plus per open stream one message past its
 * bound, one message grpc-js has decoded ahead (highWaterMark 1, see append-handler.ts) and
 * the HTTP/2 receive window of its connection (server.ts RECEIVE_WINDOW_BYTES).
 */
export interface AppendLimits {
  /** Append streams open at once, authenticated or not (each costs a window and a slot). */
  streams: number;
  /**
   * Streams naming one volume at once. One shipper writes a volume; a reconnecting one
   * displaces its old stream, which counts until its appends in the store are done.
   */
  streamsPerVolume: number;
  /** Batch bytes one stream may have received and not yet seen appended. */
  streamBytes: number;
  /** The same over all streams. */
  totalBytes: number;
  /** A stream that has not sent its Hello by then is closed, giving its slot back. */
  helloTimeoutMs: number;
}

export const DEFAULT_APPEND_LIMITS: AppendLimits = {
  streams: 256,
  streamsPerVolume: 4,
  streamBytes: 32 * 1024 * 1024,
  totalBytes: 512 * 1024 * 1024,
  helloTimeoutMs: 30_000,
};

/** Per entry beyond its payload: the decoded message's fields and the journal record. */
const ENTRY_OVERHEAD_BYTES = 128;

/** Memory a decoded batch holds, as counted against the bounds. */
export function batchBytes(b: BatchMsg): number {
  let n = 0;
  for (const e of b.entries) n += ENTRY_OVERHEAD_BYTES + (e.payload?.length ?? 0);
  return n;
}

/** The collector's count of Append streams and the batch bytes they hold. */
export class AppendAdmission {
  readonly limits: AppendLimits;
  private openStreams = 0;
  private readonly perVolume = new Map<string, number>();
  private heldBytes = 0;
  private peakBytes = 0;
  private readonly roomWaiters = new Set<() => void>();

  constructor(limits: Partial<AppendLimits> = {}) {
    this.limits = { ...DEFAULT_APPEND_LIMITS, ...limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `Append limit ${k} must be a positive integer, not ${v}`);
    }
  }

  /** A new stream, before anything of it is read; an error to end it with when full. */
  admitStream(): RewindError | undefined {
    if (this.openStreams >= this.limits.streams) {
      return new RewindError(
        ErrorCodes.TOO_MANY_STREAMS,
        `the collector has ${this.openStreams} Append streams open, its limit; retry later (the shipper backs off and reconnects), or spread volumes over more collector replicas`,
        { details: { open: this.openStreams, limit: this.limits.streams } },
      );
    }
    this.openStreams++;
    return undefined;
  }

  endStream(): void {
    this.openStreams--;
  }

  /** A Hello naming `volume`; an error when that volume has its share of streams already. */
  admitVolume(volume: string): RewindError | undefined {
    const n = this.perVolume.get(volume) ?? 0;
    if (n >= this.limits.streamsPerVolume) {
      return new RewindError(
        ErrorCodes.TOO_MANY_STREAMS,
        `volume "${volume}" has ${n} Append streams open already (one writing, the others ending); a volume has one shipper: check that no second node serves it, and retry once the old streams end`,
        { details: { volume, open: n, limit: this.limits.streamsPerVolume } },
      );
    }
    this.perVolume.set(volume, n + 1);
    return undefined;
  }

  endVolume(volume: string): void {
    const n = (this.perVolume.get(volume) ?? 1) - 1;
    if (n <= 0) this.perVolume.delete(volume);
    else this.perVolume.set(volume, n);
  }

  add(bytes: number): void {
    this.heldBytes += bytes;
    if (this.heldBytes > this.peakBytes) this.peakBytes = this.heldBytes;
  }

  sub(bytes: number): void {
    this.heldBytes -= bytes;
    if (this.heldBytes < this.limits.totalBytes && this.roomWaiters.size > 0) {
      const ws = [...this.roomWaiters];
      this.roomWaiters.clear();
      for (const w of ws) w();
    }
  }

  get overTotal(): boolean {
    return this.heldBytes >= this.limits.totalBytes;
  }

  /** Run `cb` once the total is below its bound again; returns a canceller. */
  onRoom(cb: () => void): () => void {
    this.roomWaiters.add(cb);
    return () => this.roomWaiters.delete(cb);
  }

  get held(): number {
    return this.heldBytes;
  }

  get peak(): number {
    return this.peakBytes;
  }

  get streams(): number {
    return this.openStreams;
  }
}
