import type { Logger } from '../core/logger.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import { isAllZero } from '../journal/segment.js';
import type { Backend } from '../nbd/backend.js';

/**
 * Initial base copy of a volume that already holds data when protection starts
 * (US 5799147: initial full copy, then only changes; skip unused sectors).
 *
 * ORDERING RULE — why any instant after protection-start restores exactly:
 *  1. The journal filter is installed BEFORE the copy starts, so every write from then
 *     on is journaled. It holds a range lock around "append entry + write device".
 *  2. Each base chunk takes the SAME range lock around "read device + append BASE entry".
 *  So for every byte, the journal orders the base chunk after every write that reached
 *  the device before the read, and before every write that reaches it after. Replaying
 *  the journal to any seq ≥ the last base chunk's seq (= protection start) gives, for
 *  each byte, either the chunk (the device's content when read, which already included
 *  all earlier writes) or a later journaled write — exactly the device at that instant.
 *  Ranges that read as zeroes (block status ZERO) are skipped: the collector's empty
 *  image is zero there, and a write landing in them later is journaled by rule 1.
 */
export interface RangeLockPort {
  acquire(offset: bigint, length: number): Promise<() => void>;
}

export interface BaseCopySpool {
  append(e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }): Promise<JournalRecord | null>;
}

export interface BaseCopyOptions {
  /** The backing volume (reads may go through the journal filter or beneath it). */
  backend: Backend;
  spool: BaseCopySpool;
  /** The journal filter's lock: the same instance orders copies against live writes (node-volume.ts). */
  lock: RangeLockPort;
  chunkSize?: number;
  /**
   * Ranges to copy (default: the whole volume). A resync after a crash or a full spool
   * passes the dirty extents here.
   */
  ranges?: Array<{ offset: bigint; length: number | bigint }>;
  /**
   * 'skip' (initial copy): ranges reading as zeros are left out, the collector's empty
   * image is zero there. 'record' (resync): they become ZERO entries, because the copy
   * on the other side may hold older data there.
   */
  zeros?: 'skip' | 'record';
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: (doneBytes: bigint, size: bigint) => void;
}

export interface BaseCopyResult {
  /** Seq of the last base chunk; 0n when nothing needed copying. */
  protectionStartSeq: bigint;
  bytesCopied: bigint;
  chunks: number;
}

/** Block-status window per query; bounds the extent list a backend returns at once. */
const STATUS_WINDOW = 256 * 1024 * 1024;
const NBD_STATE_ZERO = 2;

/**
 * Which extents to copy, decided up front. Asking block status window by window while
 * copying would also find data that live writes put there after protection started (a
 * sequential writer stays just ahead of the copy), and journal it a second time as base
 * chunks: the spool then carried every byte twice. Those writes are journaled already
 * (rule 1), so the map as of protection start is what needs copying. Adjacent extents of
 * the same kind are merged to keep the list short on a fragmented device.
 */
async function extentsToCopy(backend: Backend, ranges: NonNullable<BaseCopyOptions['ranges']>, keepZeros: boolean, signal?: AbortSignal) {
  const size = backend.size;
  const out: Array<{ start: bigint; end: bigint; zero: boolean }> = [];
  for (const r of ranges) {
    const rEnd = r.offset + BigInt(r.length) > size ? size : r.offset + BigInt(r.length);
    for (let win = r.offset; win < rEnd && !signal?.aborted; win += BigInt(STATUS_WINDOW)) {
      const winLen = Number(rEnd - win < BigInt(STATUS_WINDOW) ? rEnd - win : BigInt(STATUS_WINDOW));
      const extents = backend.capabilities.blockStatus
        ? await backend.blockStatus(win, winLen)
        : [{ offset: win, length: BigInt(winLen), flags: 0 }];
      for (const e of extents) {
        const start = e.offset < win ? win : e.offset;
        const end = e.offset + e.length > win + BigInt(winLen) ? win + BigInt(winLen) : e.offset + e.length;
        const zero = (e.flags & NBD_STATE_ZERO) !== 0;
        if (end <= start || (zero && !keepZeros)) continue;
        const last = out[out.length - 1];
        if (last && last.end === start && last.zero === zero) last.end = end;
        else out.push({ start, end, zero });
      }
    }
  }
  return out;
}

/**
 * One chunk read under the range lock. A chunk that reads as zeros carries no payload:
 * skipped on an initial copy (the collector's image starts as zeros, and every byte that
 * was written since protection started is journaled already), a ZERO entry on a resync.
 * Block status cannot tell us this for a file whose holes we do not know (no SEEK_DATA in
 * Node): without the check a sparse 1 TiB volume would ship a terabyte of zeros.
 */
async function appendChunk(opts: BaseCopyOptions, buf: Buffer, off: bigint): Promise<JournalRecord | null | undefined> {
  if (isAllZero(buf)) {
    if (opts.zeros !== 'record') return undefined;
    return opts.spool.append({ kind: RecordKind.Zero, flags: RecordFlag.Base, offset: off, length: buf.length, payload: Buffer.alloc(0) });
  }
  return opts.spool.append({ kind: RecordKind.Write, flags: RecordFlag.Base, offset: off, length: buf.length, payload: buf });
}

/**
 * A range that read as zeros when the plan was made gets a ZERO entry, but a live write
 * may have landed there since, and a ZERO entry ordered after it would erase it on
 * replay. So, under the range lock, ask again and copy whatever is data by now.
 */
async function appendZeroRange(opts: BaseCopyOptions, off: bigint, len: number, chunk: number): Promise<JournalRecord | null> {
  const { backend, spool } = opts;
  const now = backend.capabilities.blockStatus ? await backend.blockStatus(off, len) : [{ offset: off, length: BigInt(len), flags: 0 }];
  let rec: JournalRecord | null = null;
  const end = off + BigInt(len);
  for (const e of now) {
    const s = e.offset < off ? off : e.offset;
    const t = e.offset + e.length > end ? end : e.offset + e.length;
    if (t <= s) continue;
    if ((e.flags & NBD_STATE_ZERO) !== 0) {
      rec = (await spool.append({ kind: RecordKind.Zero, flags: RecordFlag.Base, offset: s, length: Number(t - s), payload: Buffer.alloc(0) })) ?? rec;
      continue;
    }
    for (let p = s; p < t; p += BigInt(chunk)) {
      const n = Number(t - p < BigInt(chunk) ? t - p : BigInt(chunk));
      const buf = Buffer.allocUnsafe(n);
      await backend.pread(buf, p);
      rec = (await appendChunk(opts, buf, p)) ?? rec;
    }
  }
  return rec;
}

export async function runBaseCopy(opts: BaseCopyOptions): Promise<BaseCopyResult> {
  const { backend, lock } = opts;
  const chunk = opts.chunkSize ?? 1024 * 1024;
  const size = backend.size;
  let last = 0n;
  let copied = 0n;
  let chunks = 0;
  const plan = await extentsToCopy(backend, opts.ranges ?? [{ offset: 0n, length: size }], opts.zeros === 'record', opts.signal);
  for (const { start, end, zero: isZero } of plan) {
    // A zero range carries no payload: one entry per 1 GiB keeps the journal small.
    const step = BigInt(isZero ? 1 << 30 : chunk);
    for (let off = start; off < end; off += step) {
      if (opts.signal?.aborted) break;
      const len = Number(end - off < step ? end - off : step);
      const release = await lock.acquire(off, len);
      // undefined: an all-zero chunk skipped on an initial copy.
      let rec: JournalRecord | null | undefined;
      try {
        if (isZero) {
          rec = await appendZeroRange(opts, off, len, chunk);
        } else {
          const buf = Buffer.allocUnsafe(len);
          await backend.pread(buf, off);
          rec = await appendChunk(opts, buf, off);
        }
      } finally {
        release();
      }
      // null: the spool is full and tracks the extent as dirty; the resync covers it.
      if (rec) last = rec.seq;
      if (rec !== undefined) {
        copied += BigInt(len);
        chunks++;
      }
      opts.onProgress?.(off + BigInt(len), size);
    }
  }
  opts.logger?.info('base copy done', { bytesCopied: copied, chunks, protectionStartSeq: last });
  return { protectionStartSeq: last, bytesCopied: copied, chunks };
}
