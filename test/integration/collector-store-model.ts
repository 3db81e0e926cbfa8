import { randomBytes } from 'node:crypto';
import { HybridClock, ManualWallClock } from '../../src/core/hlc.js';
import { RecordKind, EMPTY, type JournalRecord } from '../../src/journal/record.js';
import type { RestoreChunk, VolumeStore } from '../../src/collector/store/index.js';
import { Rng } from '../../bench/collector-workload.js';

/**
 * In-memory model of a volume driven by a seeded random history of unaligned writes, trims
 * and write-zeroes, so every store answer can be checked against the truth.
 */
// The same seeded generator the collector bench uses, so histories are reproducible.
export { Rng };

export interface Snapshot { seq: bigint; time: bigint; image: Buffer }

export class VolumeModel {
  readonly image: Buffer;
  readonly wall = new ManualWallClock();
  readonly clock = new HybridClock(this.wall.read);
  seq = 0n;
  readonly snapshots: Snapshot[] = [];

  /** 'random': crypto bytes; 'seeded': bytes derived from the seq, so another process can replay them. */
  constructor(readonly size: number, readonly rng: Rng, readonly fill: 'random' | 'seeded' = 'random') {
    this.image = Buffer.alloc(size);
  }

  /** Next random record, applied to the model. */
  nextRecord(maxLen = 96 * 1024): JournalRecord {
    this.wall.advance(BigInt(1 + this.rng.int(3)) * 1_000_000n);
    const seq = ++this.seq;
    const time = this.clock.now();
    const len = 1 + this.rng.int(Math.min(maxLen, this.size));
    const off = this.rng.int(this.size - len + 1);
    const r = this.rng.int(10);
    if (r < 7) {
      const payload = this.fill === 'random' ? randomBytes(len) : seededBytes(seq, len);
      payload.copy(this.image, off);
      return { kind: RecordKind.Write, flags: 0, seq, time, offset: BigInt(off), length: len, payload };
    }
    this.image.fill(0, off, off + len);
    return { kind: r < 9 ? RecordKind.Trim : RecordKind.Zero, flags: 0, seq, time, offset: BigInt(off), length: len, payload: EMPTY };
  }

  markRecord(name: string): JournalRecord {
    this.wall.advance(1_000_000n);
    return { kind: RecordKind.Mark, flags: 0, seq: ++this.seq, time: this.clock.now(), offset: 0n, length: 0, payload: Buffer.from(name) };
  }

  /** Snapshot the model as of the last record; `time` is an instant strictly inside (that record, next one). */
  snapshot(): Snapshot {
    const s = { seq: this.seq, time: this.clock.peek() + 500_000n, image: Buffer.from(this.image) };
    this.snapshots.push(s);
    return s;
  }

  /** Feed `n` random records to the store in batches, snapshotting every `every`. */
  async drive(v: VolumeStore, n: number, every: number): Promise<void> {
    let batch: JournalRecord[] = [];
    for (let i = 1; i <= n; i++) {
      batch.push(this.nextRecord());
      if (i % every === 0 || i === n) {
        await v.append(batch);
        batch = [];
        this.snapshot();
      } else if (batch.length >= 8) {
        await v.append(batch);
        batch = [];
      }
    }
  }
}

/** Restore `p` into a buffer, checking the chunk contract on the way. */
export async function restoreToBuffer(v: VolumeStore, p: Parameters<VolumeStore['restore']>[0], base?: Buffer, changedSince?: Parameters<VolumeStore['restore']>[0]): Promise<Buffer> {
  const out = base ? Buffer.from(base) : Buffer.alloc(Number(v.size), 0xee);
  let last = -1n;
  await v.restore(p, async (c: RestoreChunk) => {
    if (c.offset < last) throw new Error(`chunk at ${c.offset} after ${last}: not ascending`);
    if (c.length > 4 * 1024 * 1024) throw new Error(`chunk of ${c.length} bytes exceeds 4 MiB`);
    last = c.offset + BigInt(c.length);
    if (c.zero) out.fill(0, Number(c.offset), Number(c.offset) + c.length);
    else c.data!.copy(out, Number(c.offset));
  }, changedSince ? { changedSince } : {});
  return out;
}

/** Byte ranges where a and b differ, as [start, end). */
export function byteDiff(a: Buffer, b: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let i = 0;
  while (i < a.length) {
    if (a[i] === b[i]) { i++; continue; }
    const s = i;
    while (i < a.length && a[i] !== b[i]) i++;
    out.push([s, i]);
  }
  return out;
}

export function seededBytes(seq: bigint, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  const k = Number(seq % 251n);
  for (let i = 0; i < len; i++) b[i] = (k + i * 13 + (i >> 8)) & 0xff;
  return b;
}
