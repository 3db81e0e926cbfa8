import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../core/errors.js';
import { HybridClock, ManualWallClock } from '../../core/hlc.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../../journal/record.js';
import { RESEND_BEGIN_MARK, RESEND_END_MARK } from '../../journal/resend-marks.js';
import { CollectorStore } from './collector-store.js';

const KiB = 1024;
let dir: string;
let store: CollectorStore;
const wall = new ManualWallClock(1_800_000_000_000_000_000n);
const clock = new HybridClock(wall.read);
let seq = 0n;

function rec(kind: RecordKind, off: number, payload: Buffer, flags = 0): JournalRecord {
  wall.advance(10_000_000n);
  return { kind, flags, seq: ++seq, time: clock.now(), offset: BigInt(off), length: kind === RecordKind.Mark ? 0 : payload.length, payload };
}
const write = (off: number, fill: number, len = 512, flags = 0) => rec(RecordKind.Write, off, Buffer.alloc(len, fill), flags);
const mark = (name: string) => rec(RecordKind.Mark, 0, Buffer.from(name, 'utf8'));

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-resend-'));
  store = await CollectorStore.open(dir, { segmentBytes: 64 * KiB });
  seq = 0n;
});
afterEach(async () => {
  await store.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('VolumeStore while the node resends the volume', () => {
  it('refuses points between a resend BEGIN and its END, and serves those on either side exactly', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const before = write(0, 1);
    const begin = mark(RESEND_BEGIN_MARK);
    const base = write(4096, 7, 4096, RecordFlag.Base);
    const live = write(100, 2);
    const end = mark(RESEND_END_MARK);
    const after = write(200, 3);
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

  it('keeps an unfinished resend open (latest state included) and remembers both kinds of span after reopening', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const a = write(0, 1);
    const b1 = mark(RESEND_BEGIN_MARK);
    const copied = write(512, 9, 512, RecordFlag.Base);
    const e1 = mark(RESEND_END_MARK);
    const b2 = mark(RESEND_BEGIN_MARK);
    const c = write(0, 2);
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

  it('refuses user marks in Rewind\'s own namespace', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    await v.append([write(0, 1)]);
    await expect(v.addMark('rewind:mine')).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
    expect((await v.addMark('mine')).name).toBe('mine');
  });

  it('still consolidates through a resend span (retention cuts anywhere)', async () => {
    const v = await store.createVolume('v', BigInt(8 * KiB));
    const first = write(0, 1);
    const b = mark(RESEND_BEGIN_MARK);
    const x = write(0, 5);
    const e = mark(RESEND_END_MARK);
    await v.append([first, b, x, e, write(1024, 6)]);
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
