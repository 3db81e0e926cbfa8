import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EMPTY, RecordKind, type JournalRecord } from '../../journal/record.js';
import { CollectorStore } from '../store/collector-store.js';
import { ACTIVITY_FILE } from './activity-file.js';
import { ActivityLog } from './activity.js';
import { planWindows } from './plan.js';
import { windowOf } from './window.js';

const S = 1_000_000_000n;
const T0 = 1_800_000_000n * S; // a multiple of the interval
let dir: string;
let seq = 0n;

function write(off: number, len: number, at: bigint): JournalRecord {
  return { kind: RecordKind.Write, flags: 0, seq: ++seq, time: at, offset: BigInt(off), length: len, payload: Buffer.alloc(len, 1) };
}
function zero(off: number, len: number, at: bigint): JournalRecord {
  return { kind: RecordKind.Zero, flags: 0, seq: ++seq, time: at, offset: BigInt(off), length: len, payload: EMPTY };
}
const shape = (xs: Array<{ start: bigint; writeOps: number; writtenBytes: number; uniqueBytes: number; zeroOps: number }>) =>
  xs.map((x) => [Number((x.start - T0) / S), x.writeOps, x.writtenBytes, x.uniqueBytes, x.zeroOps]);

describe('planner activity: per-interval first-update maps kept with the history', () => {
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-activity-'));
    seq = 0n;
  });
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  it('records written and unique bytes per interval as entries are taken in, and survives a restart', async () => {
    let store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
    const v = await store.createVolume('a', 1n << 20n);
    // Interval 0: block 0 twice and 10 bytes inside it, a zero range. Interval 1: 5000 bytes at 8 KiB.
    await v.append([write(0, 4096, T0 + S), write(0, 4096, T0 + 2n * S), write(100, 10, T0 + 3n * S), zero(65536, 4096, T0 + 4n * S)]);
    await v.append([write(8192, 5000, T0 + 12n * S)]);
    expect(shape(v.activity().intervals)).toEqual([[0, 3, 8202, 4096, 1], [10, 1, 5000, 5000, 0]]);
    // Interval 3 (30–40 s) closes interval 1; interval 2 saw nothing and has no entry.
    await v.append([write(8192, 100, T0 + 31n * S)]);
    const before = v.activity().intervals;
    expect(before.map((x) => [x.firstSeq, x.lastSeq])).toEqual([[1n, 4n], [5n, 5n], [6n, 6n]]);
    await store.close();
    const lines = (await fsp.readFile(path.join(dir, 'volumes', 'a', 'planner', ACTIVITY_FILE), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(2); // the open interval is not written: the index rebuilds it

    store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
    const after = store.volume('a')!.activity().intervals;
    expect(after).toEqual(before);
    await store.close();
  });

  it('rebuilds from the journal when the file is torn or the interval setting changed', async () => {
    let store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
    const v = await store.createVolume('a', 1n << 20n);
    for (let i = 0; i < 5; i++) await v.append([write(i * 4096, 4096, T0 + BigInt(i) * 10n * S)]);
    const want = v.activity().intervals;
    await store.close();
    const file = path.join(dir, 'volumes', 'a', 'planner', ACTIVITY_FILE);
    const text = await fsp.readFile(file, 'utf8');
    await fsp.writeFile(file, text.slice(0, text.length - 30)); // tear the last line
    store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
    expect(store.volume('a')!.activity().intervals).toEqual(want);
    await store.close();
    expect(await fsp.readFile(file, 'utf8')).toBe(text);

    store = await CollectorStore.open(dir, { planIntervalNs: 20n * S });
    expect(shape(store.volume('a')!.activity().intervals)).toEqual([[0, 2, 8192, 8192, 0], [20, 2, 8192, 8192, 0], [40, 1, 4096, 4096, 0]]);
    await store.close();
  });

  it('drops the intervals whose log consolidation folded into the checkpoint', async () => {
    const store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
    const v = await store.createVolume('a', 1n << 20n);
    for (let i = 0; i < 4; i++) await v.append([write(0, 4096, T0 + BigInt(i) * 10n * S + S)]);
    expect(v.activity().intervals).toHaveLength(4);
    await v.consolidate({ seq: 2n }); // checkpoint at T0 + 11 s: interval 0 ended before it
    expect(shape(v.activity().intervals).map((x) => x[0])).toEqual([10, 20, 30]);
    await store.close();
    const reopened = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
    expect(shape(reopened.volume('a')!.activity().intervals).map((x) => x[0])).toEqual([10, 20, 30]);
    await reopened.close();
  });
});

describe('planner activity under heavy random writes', () => {
  it('coarsens an interval whose map outgrows its run budget, and the plan says its unique bytes are an upper bound', async () => {
    const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-activity-coarse-'));
    try {
      // 300 one-byte writes 8 KiB apart in one interval, then one in the next to close it.
      const n = 301;
      const index = { baseSeq: 1n, count: n, times: new BigUint64Array(n), offs: new Float64Array(n), lens: new Uint32Array(n), kinds: new Uint8Array(n).fill(RecordKind.Write) };
      for (let i = 0; i < n; i++) {
        index.times[i] = T0 + (i === n - 1 ? 15n * S : BigInt(i) * 1_000_000n);
        index.offs[i] = i * 8192;
        index.lens[i] = 1;
      }
      const log = await ActivityLog.open(d, index, { intervalNs: 10n * S, durableSeq: BigInt(n), historyStartNs: 0n, maxRuns: 100 });
      const [a] = log.intervals();
      expect(a).toMatchObject({ writeOps: 300, writtenBytes: 300, uniqueBytes: 300 });
      expect(a!.grain).toBeGreaterThanOrEqual(4096);
      expect(a!.runs.length / 2).toBeLessThanOrEqual(100);
      const p = planWindows([windowOf({ name: 'x', intervalNs: 10n * S, intervals: log.intervals(), historyStartNs: T0, latestNs: T0 + 15n * S, markTime: () => undefined }, undefined, undefined)]);
      // The coarse map covers far more than 300 bytes; the plan never claims more unique than written.
      expect(p.bytes).toMatchObject({ written: 301, unique: 301, approximate: true });
      expect(p.warnings.join(' ')).toMatch(/upper bound/);
      await log.flush();
    } finally {
      await fsp.rm(d, { recursive: true, force: true });
    }
  });
});
