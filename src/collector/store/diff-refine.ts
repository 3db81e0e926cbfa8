import type { Checkpoint } from './checkpoint.js';
import type { Coverage } from './coverage.js';
import type { EntryIndex } from './entry-index.js';
import { emitImage } from './image-emitter.js';
import type { DiffExtent } from './image-plan.js';
import type { SegmentLocator } from './segment-locator.js';

/** Granularity of the exact diff: a reported 512-byte-aligned piece always holds a differing byte. */
export const DIFF_GRAIN = 512;
const COARSE = 64 * 1024;
/** Candidate bytes compared per pass (two images of this many bytes in memory). */
const BATCH_BYTES = 32 * 1024 * 1024;

/**
 * Narrow the log's candidate extents (every byte some entry touched) to the ones whose
 * bytes really differ, by reading both images over the candidates only. Equals `cmp` of
 * the two restored images at 512-byte granularity: no differing byte is ever dropped, and
 * a rewrite with identical bytes (ext4 rewriting an unchanged bitmap block, a trim of
 * zeros) is no longer reported. Costs two reads of the candidate bytes, not of the volume.
 */
export async function refineDiff(args: {
  candidates: DiffExtent[];
  olderPlan: Coverage;
  youngerPlan: Coverage;
  index: EntryIndex;
  locator: SegmentLocator;
  ckpt: Checkpoint;
}): Promise<DiffExtent[]> {
  const out: DiffExtent[] = [];
  const push = (start: number, end: number, kind: DiffExtent['kind']) => {
    const last = out[out.length - 1];
    if (last && last.kind === kind && Number(last.offset + last.length) === start) last.length += BigInt(end - start);
    else out.push({ offset: BigInt(start), length: BigInt(end - start), kind });
  };
  let i = 0;
  while (i < args.candidates.length) {
    // One batch of whole candidate extents (a single huge extent is split).
    const batch: Array<[number, number, DiffExtent['kind']]> = [];
    let bytes = 0;
    while (i < args.candidates.length && bytes < BATCH_BYTES) {
      const c = args.candidates[i]!;
      let s = Number(c.offset);
      const e = s + Number(c.length);
      if (batch.length > 0 && bytes + (e - s) > BATCH_BYTES) break;
      const take = Math.min(e, s + BATCH_BYTES - bytes);
      batch.push([s, take, c.kind]);
      bytes += take - s;
      if (take < e) {
        args.candidates[i] = { ...c, offset: BigInt(take), length: BigInt(e - take) };
        break;
      }
      s = take;
      i++;
    }
    const ranges = batch.map(([s, e]) => [s, e] as [number, number]);
    const read = async (plan: Coverage) => {
      // Every byte is either read from data or zero-filled, so no need to clear it first.
      const buf = Buffer.allocUnsafe(bytes);
      await emitImage({ plan, index: args.index, locator: args.locator, ckpt: args.ckpt, ranges, into: buf, sink: async () => {} });
      return buf;
    };
    // Both images at once: their reads are independent and mostly wait on the thread pool.
    const [a, b] = await Promise.all([read(args.olderPlan), read(args.youngerPlan)]);
    let base = 0;
    for (const [s, e, kind] of batch) {
      for (let g = s; g < e;) {
        // Equal 64 KiB spans (the usual case) are skipped with one compare, not 128.
        const coarse = Math.min(e, (Math.floor(g / COARSE) + 1) * COARSE);
        const cx = base + g - s;
        if (a.compare(b, cx, cx + coarse - g, cx, cx + coarse - g) === 0) {
          g = coarse;
          continue;
        }
        for (; g < coarse;) {
          const ge = Math.min(coarse, (Math.floor(g / DIFF_GRAIN) + 1) * DIFF_GRAIN);
          const x = base + g - s;
          if (a.compare(b, x, x + ge - g, x, x + ge - g) !== 0) push(g, ge, kind);
          g = ge;
        }
      }
      base += e - s;
    }
  }
  return out;
}
