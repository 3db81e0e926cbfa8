import fsp, { type FileHandle } from 'node:fs/promises';
import type { Checkpoint } from './checkpoint.js';
import { GAP, type Coverage } from './coverage.js';
import type { EntryIndex } from './entry-index.js';
import { ZERO_SRC } from './image-plan.js';
import type { SegmentLocator } from './segment-locator.js';

export const MAX_CHUNK = 4 * 1024 * 1024;
/** Zero runs shorter than this inside data are copied as zeros rather than split out. */
const SMALL_ZERO = 64 * 1024;

export type RestoreChunk = { offset: bigint; length: number; data?: Buffer; zero?: boolean };
export type RestoreSink = (chunk: RestoreChunk) => Promise<void>;

/**
 * Turns a plan (who owns each byte) into ascending chunks of ≤ 4 MiB: data from journal
 * payloads or the checkpoint image, zero runs reported as `{zero: true}` so a caller can
 * leave holes. Only the byte ranges in `ranges` are emitted (in-place revert); by default
 * the whole volume.
 */
export async function emitImage(args: {
  plan: Coverage;
  index: EntryIndex;
  locator: SegmentLocator;
  ckpt: Checkpoint;
  ranges: Array<[number, number]>;
  sink: RestoreSink;
  onProgress?: (done: bigint, total: bigint) => void;
  /**
   * Instead of chunks for the sink, lay the ranges out back to back in this buffer (of
   * their total length): the exact diff reads two images this way without a copy.
   */
  into?: Buffer;
}): Promise<bigint> {
  const { plan, index, locator, ckpt, sink } = args;
  const total = args.ranges.reduce((a, [s, e]) => a + (e - s), 0);
  let done = 0;
  let ckptFh: Promise<FileHandle> | undefined;
  let buf: Buffer | null = null;
  let bufStart = 0;
  let bufLen = 0;
  let zStart = 0;
  let zLen = 0;

  // Reads into the current chunk run concurrently (disjoint regions of one buffer): with
  // 4 KiB pieces scattered over the journal, one-at-a-time preads took 2.2 s for 64 MiB
  // (65536 × 4 KiB history), 32 in flight 1.8 s. Synchronous preads were no faster.
  let pending: Promise<void>[] = [];
  const settle = async () => {
    const p = pending;
    pending = [];
    await Promise.all(p);
  };
  const progress = () => args.onProgress?.(BigInt(done), BigInt(total));
  const flushData = async () => {
    await settle();
    if (!buf || bufLen === 0) return;
    const b = buf.subarray(0, bufLen);
    buf = null;
    done += bufLen;
    bufLen = 0;
    await sink({ offset: BigInt(bufStart), length: b.length, data: b });
    progress();
  };
  const flushZero = async () => {
    while (zLen > 0) {
      const n = Math.min(zLen, MAX_CHUNK);
      await sink({ offset: BigInt(zStart), length: n, zero: true });
      zStart += n;
      zLen -= n;
      done += n;
      progress();
    }
  };
  const zero = async (off: number, len: number) => {
    if (args.into) {
      args.into.fill(0, at(off), at(off) + len);
      done += len;
      return;
    }
    if (buf && bufLen > 0 && bufStart + bufLen === off && len < SMALL_ZERO && bufLen + len <= MAX_CHUNK) {
      buf.fill(0, bufLen, bufLen + len);
      bufLen += len;
      return;
    }
    await flushData();
    if (zLen > 0 && zStart + zLen !== off) await flushZero();
    if (zLen === 0) zStart = off;
    zLen += len;
  };
  // Direct mode: where volume offset `off` of range q lands in args.into.
  const rangeBase: number[] = [];
  for (let q = 0, b = 0; q < args.ranges.length; b += args.ranges[q]![1] - args.ranges[q]![0], q++) rangeBase.push(b);
  let curRange = 0;
  const at = (off: number) => rangeBase[curRange]! + off - args.ranges[curRange]![0];

  /** `fill(into, at, from, n)` copies n bytes starting `from` bytes into the source. */
  const data = async (off: number, len: number, fill: (into: Buffer, at: number, from: number, n: number) => Promise<void>) => {
    if (args.into) {
      pending.push(fill(args.into, at(off), 0, len));
      if (pending.length >= 32) await settle();
      done += len;
      return;
    }
    await flushZero();
    if (buf && bufLen > 0 && bufStart + bufLen !== off) await flushData();
    let from = 0;
    while (from < len) {
      if (!buf) {
        buf = Buffer.allocUnsafe(MAX_CHUNK);
        bufStart = off + from;
        bufLen = 0;
      }
      const n = Math.min(len - from, MAX_CHUNK - bufLen);
      pending.push(fill(buf, bufLen, from, n));
      if (pending.length >= 32) await settle();
      bufLen += n;
      from += n;
      if (bufLen === MAX_CHUNK) await flushData();
    }
  };

  const fromEntry = (i: number, pieceStart: number) => async (into: Buffer, at: number, from: number, n: number) => {
    const skip = pieceStart - index.offs[i]! + from;
    if (skip === 0 && n === index.lens[i]!) {
      // Whole payload: read the full record so its CRC is checked on the way out.
      await locator.readPayloadChecked(index.segs[i]!, index.pos[i]!, n, into, at);
    } else {
      await locator.readSlice(index.segs[i]!, index.pos[i]!, skip, n, into, at);
    }
  };
  const fromCheckpoint = (pieceStart: number) => async (into: Buffer, at: number, from: number, n: number) => {
    ckptFh ??= fsp.open(ckpt.imagePath!, 'r');
    await (await ckptFh).read(into, at, n, pieceStart + from);
  };

  try {
    const ext = ckpt.extents;
    let k = 0;
    let r = 0;
    const ranges = args.ranges;
    for (const p of plan.walk()) {
      // Intersect the piece with the wanted ranges (both ascending).
      while (r < ranges.length && ranges[r]![1] <= p.start) r++;
      for (let q = r; q < ranges.length && ranges[q]![0] < p.end; q++) {
        curRange = q;
        const s = Math.max(p.start, ranges[q]![0]);
        const e = Math.min(p.end, ranges[q]![1]);
        if (e <= s) continue;
        if (p.src >= 0) await data(s, e - s, fromEntry(p.src, s));
        else if (p.src === ZERO_SRC) await zero(s, e - s);
        else if (p.src === GAP) {
          let pos = s;
          while (k < ext.length && ext[k]![0] + ext[k]![1] <= pos) k++;
          for (let j = k; j < ext.length && ext[j]![0] < e; j++) {
            const ds = Math.max(pos, ext[j]![0]);
            const de = Math.min(e, ext[j]![0] + ext[j]![1]);
            if (de <= ds) continue;
            if (ds > pos) await zero(pos, ds - pos);
            await data(ds, de - ds, fromCheckpoint(ds));
            pos = de;
          }
          if (pos < e) await zero(pos, e - pos);
        }
      }
    }
    await flushData();
    await flushZero();
    await settle();
  } finally {
    await Promise.allSettled(pending);
    if (ckptFh) await (await ckptFh).close();
  }
  return BigInt(done);
}
