/**
 * The write mix and the same-disk references the collector benchmarks compare against.
 * Payloads are views into one random pool, so generating gigabytes of history costs no
 * memory and no CPU beyond the store's own work.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import { HybridClock } from '../src/core/hlc.js';
import { RecordKind, type JournalRecord } from '../src/journal/record.js';

export const MiB = 1024 * 1024;
export const KiB = 1024;

/** mulberry32: fast, seeded, so every run writes the same history. */
export class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * A realistic mix: mostly 64 KiB–1 MiB writes (filesystem extents, database pages
 * flushed in runs) with one in ten a 4 KiB write (metadata, journal commits). By count:
 * 10% 4 KiB, 18% each of 64/128/256/512/1024 KiB, all 4 KiB aligned.
 */
export const MIX_SIZES_KIB = [64, 128, 256, 512, 1024];
export const MIX_SMALL_FRACTION = 0.1;
export const MIX_DESCRIPTION = '10% 4 KiB, 90% spread evenly over 64/128/256/512/1024 KiB (by count), 4 KiB aligned, uniform offsets';

const POOL = randomBytes(16 * MiB);

export class WriteMix {
  private readonly rng: Rng;
  private readonly clock = new HybridClock();
  seq = 0n;
  counts = new Map<number, number>();
  private pending: JournalRecord | undefined;

  constructor(readonly volumeSize: number, seed = 1) {
    this.rng = new Rng(seed);
  }

  nextLength(): number {
    return this.rng.next() < MIX_SMALL_FRACTION ? 4 * KiB : MIX_SIZES_KIB[this.rng.int(MIX_SIZES_KIB.length)]! * KiB;
  }

  /** One write record with the next seq, at a uniform 4 KiB-aligned offset inside the volume. */
  next(): JournalRecord {
    const len = this.nextLength();
    this.counts.set(len, (this.counts.get(len) ?? 0) + 1);
    const off = this.rng.int((this.volumeSize - len) / 4096 + 1) * 4096;
    const p = this.rng.int((POOL.length - len) / 4096) * 4096;
    return { kind: RecordKind.Write, flags: 0, seq: ++this.seq, time: this.clock.now(), offset: BigInt(off), length: len, payload: POOL.subarray(p, p + len) };
  }

  /**
   * The next batch, cut exactly as the shipper cuts a spool read (spool.read maxBytes,
   * counting 48-byte headers, at least one record), so the store-direct, gRPC and
   * reference runs all see the same batch boundaries and the same number of fdatasyncs.
   */
  batch(maxBytes: number): JournalRecord[] {
    const out: JournalRecord[] = [];
    let sum = 0;
    for (;;) {
      const r = this.pending ?? this.next();
      this.pending = undefined;
      if (out.length > 0 && sum + r.length > maxBytes) {
        this.pending = r;
        return out;
      }
      out.push(r);
      sum += r.length + 48;
    }
  }

  /** e.g. "4K×410 64K×730 …" for the report. */
  describeCounts(): string {
    return [...this.counts.entries()].sort((a, b) => a[0] - b[0]).map(([l, n]) => `${l / KiB}K×${n}`).join(' ');
  }
}

export function payloadBytes(batch: JournalRecord[]): number {
  let n = 0;
  for (const r of batch) n += r.length;
  return n;
}

/**
 * Reference for ingest: append `sizes[i]` bytes to a fresh file then fdatasync, per batch,
 * exactly what a journal segment append costs without any of the store's work. Returns seconds.
 */
export async function fsyncedSequentialWrites(file: string, sizes: number[]): Promise<number> {
  const fh = await fsp.open(file, 'w');
  try {
    let pos = 0;
    const t0 = performance.now();
    for (const n of sizes) {
      let p = 0;
      while (p < n) {
        const len = Math.min(n - p, POOL.length);
        await fh.write(POOL, 0, len, pos);
        pos += len;
        p += len;
      }
      await fh.datasync();
    }
    return (performance.now() - t0) / 1000;
  } finally {
    await fh.close();
  }
}

/** Fill `file` with `size` bytes of incompressible data and sync it (copy source). */
export async function writeFile(file: string, size: number): Promise<void> {
  const fh = await fsp.open(file, 'w');
  try {
    for (let o = 0; o < size; o += 4 * MiB) await fh.write(POOL, 0, Math.min(4 * MiB, size - o), o);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reference for restore: read `src` sequentially, 4 MiB at a time, write `dst`, fdatasync. Seconds. */
export async function sequentialCopy(src: string, dst: string, size: number): Promise<number> {
  const r = await fsp.open(src, 'r');
  const d = await fsp.open(dst, 'w');
  const buf = Buffer.allocUnsafe(4 * MiB);
  try {
    const t0 = performance.now();
    for (let o = 0; o < size; o += 4 * MiB) {
      const { bytesRead } = await r.read(buf, 0, 4 * MiB, o);
      await d.write(buf, 0, bytesRead, o);
    }
    await d.datasync();
    return (performance.now() - t0) / 1000;
  } finally {
    await r.close();
    await d.close();
  }
}

/**
 * Sync, then drop the page cache so the next phase reads from disk. Needs root and a
 * writable /proc/sys; returns false (and the caller reports "warm") when that is refused.
 */
export async function dropCaches(): Promise<boolean> {
  try {
    execFileSync('sync');
    await fsp.writeFile('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
