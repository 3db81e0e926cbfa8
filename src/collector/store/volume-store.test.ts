import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../core/errors.js';
import { HybridClock, ManualWallClock } from '../../core/hlc.js';
import { EMPTY, RecordFlag, RecordKind, type JournalRecord } from '../../journal/record.js';
import { RESEND_BEGIN_MARK, RESEND_END_MARK } from '../../journal/resend-marks.js';
import { unionBytes } from '../planner/run-set.js';
import { decodeManifest, encodeManifest } from './checkpoint.js';
import { CollectorStore } from './collector-store.js';
import { consolidationTarget } from './retention.js';

const KiB = 1024;
let dir: string;
let store: CollectorStore;
const wall = new ManualWallClock(1_800_000_000_000_000_000n);
const clock = new HybridClock(wall.read);
let seq = 0n;

function write(off: number, data: Buffer, advanceMs = 10): JournalRecord {
  wall.advance(BigInt(advanceMs) * 1_000_000n);
  return { kind: RecordKind.Write, flags: 0, seq: ++seq, time: clock.now(), offset: BigInt(off), length: data.length, payload: data };
}
function trim(off: number, len: number): JournalRecord {
  wall.advance(10_000_000n);
  return { kind: RecordKind.Trim, flags: 0, seq: ++seq, time: clock.now(), offset: BigInt(off), length: len, payload: EMPTY };
}

async function image(v: NonNullable<ReturnType<CollectorStore['volume']>>, p: Parameters<typeof v.resolve>[0]): Promise<Buffer> {
  const out = Buffer.alloc(Number(v.size), 0xee);
  await v.restore(p, async (c) => {
    if (c.zero) out.fill(0, Number(c.offset), Number(c.offset) + c.length);
    else c.data!.copy(out, Number(c.offset));
  });
  return out;
}

/** For the resend tests: a write of `len` bytes of `fill`, and a mark. */
function rwrite(off: number, fill: number, len = 512, flags = 0): JournalRecord {
  return { ...write(off, Buffer.alloc(len, fill)), flags };
}
function mark(name: string): JournalRecord {
  wall.advance(10_000_000n);
  return { kind: RecordKind.Mark, flags: 0, seq: ++seq, time: clock.now(), offset: 0n, length: 0, payload: Buffer.from(name, 'utf8') };
}

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-volstore-'));
  store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
  seq = 0n;
});
afterEach(async () => {
  await store.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('VolumeStore', () => {
  it('restores unaligned overlapping writes and trims as of each instant (fake clock)', async () => {
    const v = await store.createVolume('v1', BigInt(8 * KiB));
    const r1 = write(1000, Buffer.alloc(3000, 1));
    const r2 = write(2500, Buffer.alloc(100, 2));
    const r3 = trim(2000, 1024);
    await v.append([r1, r2, r3]);
    const want1 = Buffer.alloc(8 * KiB); want1.fill(1, 1000, 4000);
    const want2 = Buffer.from(want1); want2.fill(2, 2500, 2600);
    const want3 = Buffer.from(want2); want3.fill(0, 2000, 3024);
    expect(await image(v, { time: r1.time })).toEqual(want1);
    expect(await image(v, { time: r2.time + 1n })).toEqual(want2);
    expect(await image(v, { time: r3.time + 10n ** 12n })).toEqual(want3); // after the latest: the latest state
    expect(await image(v, { time: r1.time - 1n })).toEqual(Buffer.alloc(8 * KiB)); // before any entry: checkpoint 0 (zeros)
    expect(await v.diff({ seq: 1n }, { seq: 3n })).toEqual([
      { offset: 2000n, length: 1024n, kind: 'zero' },
    ]);
    // Exact (default): the trimmed range was zero at seq 0 too, so it is not a difference.
    expect(await v.diff({ seq: 3n }, { seq: 0n })).toEqual([
      { offset: 1000n, length: 1000n, kind: 'data' },
      { offset: 3024n, length: 976n, kind: 'data' },
    ]);
    // From the log alone, every touched byte is a candidate.
    expect(await v.diff({ seq: 3n }, { seq: 0n }, { exact: false })).toEqual([
      { offset: 1000n, length: 1000n, kind: 'data' },
      { offset: 2000n, length: 1024n, kind: 'zero' },
      { offset: 3024n, length: 976n, kind: 'data' },
    ]);
    // A rewrite with identical bytes is a candidate but not a difference.
    const r4 = write(1000, Buffer.alloc(600, 1));
    await v.append([r4]);
    expect(await v.diff({ seq: 3n }, { seq: 4n })).toEqual([]);
    expect(await v.diff({ seq: 3n }, { seq: 4n }, { exact: false })).toEqual([{ offset: 1000n, length: 600n, kind: 'data' }]);
    expect(await v.allocated({ seq: 4n })).toEqual([{ offset: 1000n, length: 1000n }, { offset: 3024n, length: 976n }]);
  });

  it('is idempotent for re-sent batches and refuses gaps and out-of-range extents', async () => {
    const v = await store.createVolume('v2', BigInt(4 * KiB));
    const a = write(0, Buffer.alloc(10, 9));
    const b = write(10, Buffer.alloc(10, 8));
    expect(await v.append([a, b])).toBe(2n);
    expect(await v.append([a, b])).toBe(2n);
    const c = write(0, Buffer.alloc(1, 1));
    c.seq = 5n;
    await expect(v.append([c])).rejects.toMatchObject({ code: ErrorCodes.JOURNAL_SEQ_GAP, details: { expected: 3n } });
    seq = 2n;
    await expect(v.append([write(4095, Buffer.alloc(2))])).rejects.toMatchObject({ code: ErrorCodes.OUT_OF_RANGE });
    expect(v.durableSeq).toBe(2n);
  });

  it('createVolume is idempotent for the same size and refuses another size or a bad name', async () => {
    const v = await store.createVolume('same', 4096n);
    expect(await store.createVolume('same', 4096n)).toBe(v);
    await expect(store.createVolume('same', 8192n)).rejects.toMatchObject({ code: ErrorCodes.ALREADY_EXISTS });
    await expect(store.createVolume('../etc', 8192n)).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
    expect(store.listVolumes().map((x) => x.name)).toEqual(['same']);
  });

  it('records the planner\'s first-update maps per interval as appends are taken in', async () => {
    const s = await CollectorStore.open(path.join(dir, 'planner'), { planIntervalNs: 1_000_000_000n });
    const v = await s.createVolume('bm', BigInt(64 * KiB));
    // A 4 KiB block and 10 bytes inside it in one 1 s interval, 5000 bytes in the next.
    await v.append([write(0, Buffer.alloc(4096, 1), 100), write(100, Buffer.alloc(10, 2), 100), write(8192, Buffer.alloc(5000, 3), 1000)]);
    const xs = v.activity().intervals;
    expect(xs.map((m) => [m.writeOps, m.writtenBytes, m.uniqueBytes])).toEqual([[2, 4106, 4096], [1, 5000, 5000]]);
    expect(unionBytes(xs.map((m) => m.runs))).toBe(4096 + 5000);
    await s.close();
  });

  it('checkpoint manifests carry a CRC that catches any change', () => {
    const text = encodeManifest({ version: 1, seq: '5', time: '7', size: '4096', extents: [[0, 512, 123]] });
    expect(decodeManifest(text, 'm.json').seq).toBe('5');
    expect(() => decodeManifest(text.replace('"5"', '"6"'), 'm.json')).toThrow(/fails its CRC/);
  });

  it('retention stops consolidation at the oldest retained mark', () => {
    expect(consolidationTarget({ seqAtCutoff: 100n, oldestMarkSeq: 40n, checkpointSeq: 10n })).toBe(40n);
    expect(consolidationTarget({ seqAtCutoff: 100n, oldestMarkSeq: undefined, checkpointSeq: 10n })).toBe(100n);
    expect(consolidationTarget({ seqAtCutoff: 5n, oldestMarkSeq: undefined, checkpointSeq: 10n })).toBe(10n);
  });

  it('with appends in flight together, resolves each in order and never past a mark it has not learned', async () => {
    const v = await store.createVolume('v9', BigInt(256 * KiB));
    const markAt = new Map<string, bigint>();
    const checks: Array<Promise<void>> = [];
    let last = 0n;
    // Meanwhile, every turn: what the volume calls durable (points, consolidation) has its marks learned.
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const d = v.durableSeq;
        const known = new Set(v.marks().map((m) => m.name));
        for (const [name, s] of markAt) if (s <= d) expect(known.has(name), `mark ${name} (seq ${s}) at durableSeq ${d}`).toBe(true);
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 40; i++) {
      const batch = [write((i % 32) * 8 * KiB, Buffer.alloc(4 * KiB + i * 97, i)), mark(`m${i}`)];
      markAt.set(`m${i}`, batch[1]!.seq);
      const own = batch[1]!.seq;
      checks.push(v.append(batch).then((d) => {
        expect(d >= own).toBe(true);
        expect(d >= last).toBe(true);
        last = d;
        // A shipper takes this as acknowledged: every mark up to it must already resolve.
        const known = new Set(v.marks().map((m) => m.name));
        for (const [name, s] of markAt) if (s <= d) expect(known.has(name), `mark ${name} (seq ${s}) at ack ${d}`).toBe(true);
      }));
      if (i % 3 === 2) await checks.at(-2);
    }
    await Promise.all(checks);
    watching = false;
    await watch;
    expect(v.marks().length).toBe(40);
  });

  it('takes marks in when marks.json cannot be saved: the append is acknowledged and the marks resolve', async () => {
    const v = await store.createVolume('vm', BigInt(256 * KiB));
    const marksFile = path.join(dir, 'volumes', 'vm', 'marks.json');
    // A directory where the file goes: every save fails (root ignores permissions).
    await fsp.mkdir(marksFile, { recursive: true });
    const first = [write(0, Buffer.alloc(4 * KiB, 1)), mark('a'), mark('b')];
    const second = [write(4 * KiB, Buffer.alloc(4 * KiB, 2)), mark('c')];
    const acks = await Promise.all([v.append(first), v.append(second)]);
    expect(acks).toEqual([3n, 5n]);
    expect(v.durableSeq).toBe(5n);
    expect(v.marks().map((m) => m.name)).toEqual(['a', 'b', 'c']);
    expect(v.resolve({ mark: 'b' }).seq).toBe(3n);
    // A mark named over the API lives only in marks.json: unsaved, it is refused, not half made.
    await expect(v.addMark('api')).rejects.toThrow();
    expect(v.marks().map((m) => m.name)).toEqual(['a', 'b', 'c']);
    await fsp.rm(marksFile, { recursive: true });
    await v.addMark('api');
    await store.close();
    store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
    expect(store.volume('vm')!.marks().map((m) => m.name)).toEqual(['a', 'b', 'c', 'api']);
  });

  it('close lets appends already made finish, and refuses later ones', async () => {
    const d2 = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-volstore-close-'));
    try {
      const s2 = await CollectorStore.open(d2, { segmentBytes: 64 * KiB });
      const v = await s2.createVolume('vc', BigInt(256 * KiB));
      const made = [v.append([write(0, Buffer.alloc(8 * KiB, 1)), mark('before-close')]), v.append([write(8 * KiB, Buffer.alloc(8 * KiB, 2))])];
      const closed = s2.close();
      expect(await Promise.all(made)).toEqual([2n, 3n]);
      await closed;
      // Refused outright: nothing reopens the journal of a closed store (no file left open).
      const fds = (await fsp.readdir('/proc/self/fd')).length;
      await expect(v.append([write(0, Buffer.alloc(1, 3))])).rejects.toMatchObject({ code: ErrorCodes.CLOSED });
      expect((await fsp.readdir('/proc/self/fd')).length).toBe(fds);
      const s3 = await CollectorStore.open(d2, { segmentBytes: 64 * KiB });
      expect(s3.volume('vc')!.durableSeq).toBe(3n);
      expect(s3.volume('vc')!.marks().map((m) => m.name)).toEqual(['before-close']);
      await s3.close();
    } finally {
      await fsp.rm(d2, { recursive: true, force: true });
    }
  });
});

describe('VolumeStore while the node resends the volume', () => {
  it('refuses points between a resend BEGIN and its END, and serves those on either side exactly', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const before = rwrite(0, 1);
    const begin = mark(RESEND_BEGIN_MARK);
    const base = rwrite(4096, 7, 4096, RecordFlag.Base);
    const live = rwrite(100, 2);
    const end = mark(RESEND_END_MARK);
    const after = rwrite(200, 3);
    await v.append([before, begin, base, live, end, after]);

    expect(v.resolve({ seq: before.seq }).seq).toBe(before.seq);
    for (const s of [begin.seq, base.seq, live.seq]) {
      expect(() => v.resolve({ seq: s })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
    }
    // An instant resolves to the entry before it: inside the span is refused too.
    expect(() => v.resolve({ time: live.time + 1n })).toThrow(/not an exact point.*pick an instant from the end on/);
    await expect(v.diff({ seq: before.seq }, { seq: base.seq })).rejects.toMatchObject({ code: ErrorCodes.POINT_NOT_EXACT });
    await expect(v.restore({ seq: live.seq }, async () => {})).rejects.toMatchObject({ code: ErrorCodes.POINT_NOT_EXACT });
    expect(v.resolve({ seq: end.seq }).seq).toBe(end.seq);
    expect(v.resolve({ time: after.time }).seq).toBe(after.seq);
    // Rewind's own marks are not user marks.
    expect(v.marks().map((m) => m.name)).toEqual([]);
  });

  /** Close the store, flip one byte of the payload of the mark named `name` on disk, reopen. */
  async function damageMark(name: string): Promise<NonNullable<ReturnType<CollectorStore['volume']>>> {
    await store.close();
    const jdir = path.join(dir, 'volumes', 'v', 'journal');
    const files = (await fsp.readdir(jdir)).filter((f) => f.endsWith('.seg')).sort();
    expect(files.length).toBeGreaterThan(1); // not in the segment the writer reopens
    const first = path.join(jdir, files[0]!);
    const bytes = await fsp.readFile(first);
    const at = bytes.indexOf(Buffer.from(name));
    expect(at).toBeGreaterThan(0);
    bytes[at + 3] ^= 0x01;
    await fsp.writeFile(first, bytes);
    store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
    return store.volume('v')!;
  }
  const filler = () => Array.from({ length: 40 }, (_, i) => rwrite(512 * (i % 8), 10 + i, 4096));

  it('after reopening, takes a BEGIN mark it cannot read for the start of a span, and says so', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const before = rwrite(0, 1);
    const begin = mark(RESEND_BEGIN_MARK);
    const base = rwrite(4096, 7, 4096, RecordFlag.Base);
    const end = mark(RESEND_END_MARK);
    const more = filler();
    await v.append([before, begin, base, end, ...more]);
    const w = await damageMark(RESEND_BEGIN_MARK);
    expect(w.resolve({ seq: before.seq }).seq).toBe(before.seq);
    for (const s of [begin.seq, base.seq]) {
      expect(() => w.resolve({ seq: s })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
    }
    expect(() => w.resolve({ seq: base.seq })).toThrow(/mark record at seq \d+ cannot be read \(run scrub on volume v\) and may be where the node began/);
    expect(w.resolve({ seq: end.seq }).seq).toBe(end.seq);
    expect(w.resolve({ seq: more[39]!.seq }).seq).toBe(more[39]!.seq);
  });

  it('after reopening, an unreadable user mark refuses nothing and holds back no consolidation', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const a = rwrite(0, 1);
    const m = mark('nightly-backup-XYZ');
    const more = filler();
    await v.append([a, m, ...more]);
    const w = await damageMark('nightly-backup-XYZ');
    // marks.json still names it (it was saved when the mark arrived).
    expect(w.marks().map((x) => x.name)).toContain('nightly-backup-XYZ');
    const last = more[39]!.seq;
    expect(w.resolve({ seq: last }).seq).toBe(last);
    expect(w.status().resendingSinceSeq).toBeUndefined();
    expect((await w.consolidate({ seq: last })).checkpointSeq).toBe(last);
  });

  it('after reopening, an unreadable END whose BEGIN was consolidated away refuses from the checkpoint to it', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const a = rwrite(0, 1);
    const begin = mark(RESEND_BEGIN_MARK);
    const base = rwrite(4096, 7, 4096, RecordFlag.Base);
    const live = rwrite(100, 2);
    const end = mark(RESEND_END_MARK);
    const more = filler();
    await v.append([a, begin, base, live, end, ...more]);
    expect((await v.consolidate({ seq: base.seq })).checkpointSeq).toBe(base.seq);
    const w = await damageMark(RESEND_END_MARK);
    expect(() => w.resolve({ seq: live.seq })).toThrow(/cannot be read .* may be where the node finished resending/);
    expect(w.resolve({ seq: end.seq }).seq).toBe(end.seq);
    expect(w.resolve({ seq: more[0]!.seq }).seq).toBe(more[0]!.seq);
  });

  it('keeps an unfinished resend open (latest state included) and remembers both kinds of span after reopening', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const a = rwrite(0, 1);
    const b1 = mark(RESEND_BEGIN_MARK);
    const copied = rwrite(512, 9, 512, RecordFlag.Base);
    const e1 = mark(RESEND_END_MARK);
    const b2 = mark(RESEND_BEGIN_MARK);
    const c = rwrite(0, 2);
    await v.append([a, b1, copied, e1, b2, c]);
    expect(() => v.resolve({ seq: c.seq })).toThrow(/has been resending the volume since/);
    expect(v.status().resendingSinceSeq).toBe(b2.seq);
    await expect(v.addMark('now-please')).rejects.toMatchObject({ code: ErrorCodes.POINT_NOT_EXACT });
    await store.close();
    store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
    const w = store.volume('v')!;
    expect(() => w.resolve({ seq: b1.seq })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
    expect(w.resolve({ seq: e1.seq }).seq).toBe(e1.seq);
    expect(() => w.resolve({ seq: c.seq })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
    // A second BEGIN while one is open does not move its start; the next END closes it.
    const again = mark(RESEND_BEGIN_MARK);
    const e2 = mark(RESEND_END_MARK);
    await w.append([again, e2]);
    expect(() => w.resolve({ seq: b2.seq })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
    expect(w.resolve({ seq: e2.seq }).seq).toBe(e2.seq);
    expect(w.status().resendingSinceSeq).toBeUndefined();
  });

  it('refuses the empty state before an initial copy, and does not consolidate into a resend still open', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const b = mark(RESEND_BEGIN_MARK);
    const x = rwrite(0, 5, 512, RecordFlag.Base);
    const e = mark(RESEND_END_MARK);
    const y = rwrite(1024, 6);
    const b2 = mark(RESEND_BEGIN_MARK);
    const z = rwrite(2048, 7, 512, RecordFlag.Base);
    await v.append([b, x, e, y, b2, z]);
    // The volume held data the collector had not seen yet: its "empty" state is no instant.
    expect(() => v.resolve({ seq: 0n })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
    expect(v.resolve({ seq: e.seq }).seq).toBe(e.seq);
    const r = await v.consolidate({ seq: z.seq });
    expect(r.checkpointSeq).toBe(y.seq);
    expect(() => v.resolve({ seq: z.seq })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
  });

  it('refuses user marks in Rewind\'s own namespace', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    await v.append([rwrite(0, 1)]);
    await expect(v.addMark('rewind:mine')).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
    expect((await v.addMark('mine')).name).toBe('mine');
  });

  it('still consolidates through a resend span (retention cuts anywhere)', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const first = rwrite(0, 1);
    const b = mark(RESEND_BEGIN_MARK);
    const x = rwrite(0, 5);
    const e = mark(RESEND_END_MARK);
    await v.append([first, b, x, e, rwrite(1024, 6)]);
    const r = await v.consolidate({ seq: x.seq });
    expect(r.checkpointSeq).toBe(x.seq);
    // The checkpoint was cut inside the span: reopened, the span runs from the checkpoint.
    await store.close();
    store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
    const w = store.volume('v')!;
    expect(() => w.resolve({ seq: x.seq })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
    expect(w.resolve({ seq: e.seq }).seq).toBe(e.seq);
  });
});
