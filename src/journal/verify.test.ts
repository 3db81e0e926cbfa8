import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRewindError } from '../core/errors.js';
import { checkRec, collect, tempDir, writeRec } from '../../test/helpers/journal-fixtures.js';
import { SEGMENT_HEADER_SIZE } from './segment.js';
import { repairJournal } from './repair.js';
import { verifyJournal } from './verify.js';
import { JournalWriter } from './writer.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const REC = 48 + 500;

async function build(n: number, segmentBytes = 16 * 1024): Promise<{ dir: string; segs: string[] }> {
  const dir = tempDir();
  dirs.push(dir);
  const w = await JournalWriter.open(dir, { segmentBytes });
  for (let s = 1n; s <= BigInt(n); s++) w.append(writeRec(s, 500));
  await w.close();
  return { dir, segs: fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).sort() };
}

function flip(p: string, at: number): void {
  const fd = fs.openSync(p, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0xff;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
}

describe('verifyJournal / repairJournal / readJournal', () => {
  it('reports a clean journal with its seq and time range', async () => {
    const { dir, segs } = await build(100);
    const v = await verifyJournal(dir);
    expect(v).toMatchObject({ ok: true, segments: segs.length, records: 100, firstSeq: 1n, lastSeq: 100n, corruptions: [] });
    expect(v.firstTime).toBe(writeRec(1n).time);
    expect(v.bytes).toBe(segs.reduce((a, s) => a + fs.statSync(path.join(dir, s)).size, 0));
  });

  it('reports EVERY corruption, each with segment, offset and bytes, and resyncs past it', async () => {
    const { dir, segs } = await build(100);
    flip(path.join(dir, segs[0]), SEGMENT_HEADER_SIZE + REC * 2 + 100); // payload of seq 3
    flip(path.join(dir, segs[2]), SEGMENT_HEADER_SIZE + REC * 4 + 3); // magic of a record
    const v = await verifyJournal(dir);
    expect(v.ok).toBe(false);
    expect(v.corruptions).toHaveLength(2);
    expect(v.corruptions[0]).toMatchObject({ segment: segs[0], offset: SEGMENT_HEADER_SIZE + REC * 2, reason: 'bad-crc', bytesDropped: REC });
    expect(v.corruptions[1]).toMatchObject({ segment: segs[2], offset: SEGMENT_HEADER_SIZE + REC * 4, reason: 'bad-magic', bytesDropped: REC });
    expect(v.records).toBe(98);
  });

  it('throws JOURNAL_CORRUPT for a missing middle segment and for a bad header', async () => {
    const { dir, segs } = await build(100);
    fs.renameSync(path.join(dir, segs[1]), path.join(dir, segs[1] + '.x'));
    const err = await collect(dir).then(() => null, (e: unknown) => e);
    expect(isRewindError(err, 'REWIND_ERR_JOURNAL_CORRUPT')).toBe(true);
    expect((err as { details: { segment: string } }).details.segment).toBe(segs[2]);
    expect((await verifyJournal(dir)).corruptions[0].reason).toBe('missing-records');
    fs.renameSync(path.join(dir, segs[1] + '.x'), path.join(dir, segs[1]));
    flip(path.join(dir, segs[1]), 20);
    await expect(collect(dir)).rejects.toThrow(/segment header/);
  });

  it('with dropCorrupt keeps the good prefix, moves later segments aside, and backs everything up', async () => {
    const { dir, segs } = await build(100);
    const bad = SEGMENT_HEADER_SIZE + REC * 3 + 44;
    flip(path.join(dir, segs[1]), bad);
    const sizes = segs.map((s) => fs.statSync(path.join(dir, s)).size);
    const r = await repairJournal(dir, { dropCorrupt: true });
    expect(r.actions[0]).toMatchObject({ segment: segs[1], action: 'truncated-corrupt', offset: bad - 44, bytesDropped: sizes[1] - (bad - 44) });
    expect(r.actions.slice(1).map((a) => [a.segment, a.action, a.bytesDropped])).toEqual(segs.slice(2).map((s, i) => [s, 'moved-aside', sizes[i + 2]]));
    for (const a of r.actions) expect(fs.existsSync(a.backup)).toBe(true);
    expect(r.after.ok).toBe(true);
    const recs = await collect(dir);
    expect(recs.every(checkRec)).toBe(true);
    const perSeg = Math.floor((16 * 1024 - SEGMENT_HEADER_SIZE) / REC);
    expect(recs.length).toBe(perSeg + 3);
    const w = await JournalWriter.open(dir, { segmentBytes: 16 * 1024 });
    expect(w.lastSeq).toBe(BigInt(perSeg + 3));
    await w.close();
  });

  it('the writer refuses to open over corruption in the tail, and drops it only when told', async () => {
    const { dir, segs } = await build(20, 1 << 20);
    expect(segs).toHaveLength(1);
    flip(path.join(dir, segs[0]), SEGMENT_HEADER_SIZE + REC * 10 + 200);
    const err = await JournalWriter.open(dir).then(() => null, (e: unknown) => e);
    expect(isRewindError(err, 'REWIND_ERR_JOURNAL_CORRUPT')).toBe(true);
    expect((err as { details: object }).details).toMatchObject({ segment: segs[0], offset: SEGMENT_HEADER_SIZE + REC * 10, bytesDropped: REC });
    const w = await JournalWriter.open(dir, { dropCorrupt: true });
    expect(w.lastSeq).toBe(10n);
    expect(fs.readdirSync(dir).some((f) => f.includes('.corrupt-'))).toBe(true);
    w.append(writeRec(11n, 500));
    await w.close();
    expect((await collect(dir)).length).toBe(11);
  });

  it('repair of a clean journal does nothing', async () => {
    const { dir } = await build(10);
    const r = await repairJournal(dir, { dropCorrupt: true });
    expect(r.actions).toEqual([]);
    expect(r.after.ok).toBe(true);
  });
});
