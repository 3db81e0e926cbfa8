import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ErrorCodes, isRewindError } from '../core/errors.js';
import { checkRec, collect, T0, tempDir, writeRec } from '../../test/helpers/journal-fixtures.js';
import { encodeRecord, RecordKind } from './record.js';
import { backupTornTail, segmentName } from './segment.js';
import { JournalWriter } from './writer.js';

const dirs: string[] = [];
function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe.each([false, true])('JournalWriter (directIo %s)', (directIo) => {
  const open = (d: string, o: Parameters<typeof JournalWriter.open>[1] = {}) => JournalWriter.open(d, { directIo, ...o });

  it('creates a journal, appends, syncs and reads back every record', async () => {
    const d = dir();
    const w = await open(d);
    for (let s = 1n; s <= 50n; s++) w.append(writeRec(s, 1 + Number(s) * 37));
    expect(w.lastSeq).toBe(50n);
    await w.sync();
    expect(w.durableSeq).toBe(50n);
    // Direct writes go in whole blocks: the open tail is padded with zeros, dropped at close.
    const seg = path.join(d, segmentName(1n));
    expect(fs.statSync(seg).size).toBe(directIo ? Math.ceil(w.bytes / 4096) * 4096 : w.bytes);
    const bytes = w.bytes;
    await w.close();
    expect(fs.statSync(seg).size).toBe(bytes);
    const recs = await collect(d);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i + 1)));
    expect(recs.every(checkRec)).toBe(true);
  });

  it('recovers lastSeq and lastTime on reopen and continues the sequence', async () => {
    const d = dir();
    let w = await open(d);
    for (let s = 1n; s <= 10n; s++) w.append(writeRec(s));
    await w.close();
    w = await open(d);
    expect(w.lastSeq).toBe(10n);
    expect(w.lastTime).toBe(writeRec(10n).time);
    w.append(writeRec(11n));
    await w.close();
    expect((await collect(d)).length).toBe(11);
  });

  it('rejects a seq gap and a time that does not increase', async () => {
    const w = await open(dir());
    w.append(writeRec(1n));
    let err: unknown;
    try { w.append(writeRec(3n)); } catch (e) { err = e; }
    expect(isRewindError(err, 'REWIND_ERR_JOURNAL_SEQ_GAP')).toBe(true);
    expect(() => w.append({ ...writeRec(2n), time: T0 })).toThrow(/not after/);
    await w.close();
  });

  it('rotates segments at segmentBytes, reads across them, and reopens on the new tail', async () => {
    const d = dir();
    const w = await open(d, { segmentBytes: 64 * 1024 });
    for (let s = 1n; s <= 100n; s++) w.append(writeRec(s, 4000));
    await w.sync();
    const files = fs.readdirSync(d).filter((f) => f.endsWith('.seg')).sort();
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) expect(fs.statSync(path.join(d, f)).size).toBeLessThanOrEqual(64 * 1024);
    await w.close();
    const recs = await collect(d);
    expect(recs.length).toBe(100);
    expect(recs.every(checkRec)).toBe(true);
    const w2 = await open(d, { segmentBytes: 64 * 1024 });
    expect(w2.lastSeq).toBe(100n);
    w2.append(writeRec(101n, 4000));
    await w2.close();
    expect((await collect(d, { fromSeq: 95n })).map((r) => r.seq)).toEqual([95n, 96n, 97n, 98n, 99n, 100n, 101n]);
  });

  it('removes whole segments below an acked seq but never the one being written', async () => {
    const d = dir();
    const w = await open(d, { segmentBytes: 64 * 1024 });
    for (let s = 1n; s <= 100n; s++) w.append(writeRec(s, 4000));
    await w.sync();
    const before = w.bytes;
    const n = w.segmentCount;
    const freed = await w.removeSegmentsBelow(50n);
    expect(freed).toBeGreaterThan(0);
    expect(w.bytes).toBe(before - freed);
    expect(w.firstSeq).toBeLessThanOrEqual(50n);
    expect((await collect(d))[0].seq).toBe(w.firstSeq);
    await w.removeSegmentsBelow(1000n);
    expect(w.segmentCount).toBe(1);
    expect(n).toBeGreaterThan(1);
    w.append(writeRec(101n, 10));
    await w.close();
    expect((await collect(d)).at(-1)!.seq).toBe(101n);
  });

  it('reads a time window and a seq window', async () => {
    const d = dir();
    const w = await open(d);
    for (let s = 1n; s <= 20n; s++) w.append(writeRec(s));
    w.append({ kind: RecordKind.Mark, flags: 0, seq: 21n, time: T0 + 21_000n, offset: 0n, length: 0, payload: Buffer.from('m1') });
    await w.close();
    expect((await collect(d, { untilTime: writeRec(5n).time })).length).toBe(5);
    expect((await collect(d, { fromSeq: 3n, toSeq: 6n })).map((r) => r.seq)).toEqual([3n, 4n, 5n, 6n]);
    expect((await collect(d, { fromSeq: 21n }))[0].payload.toString()).toBe('m1');
  });

  it('starts a new journal at firstSeq and refuses to create when create is false', async () => {
    const d = dir();
    const w = await open(d, { firstSeq: 500n });
    w.append(writeRec(500n));
    await w.close();
    expect(fs.readdirSync(d)).toContain(segmentName(500n));
    await expect(open(path.join(dir(), 'nope'), { create: false })).rejects.toThrow();
  });

  it('handles a half-created segment (torn header) left by a crash during rotation', async () => {
    const d = dir();
    const w = await open(d);
    for (let s = 1n; s <= 5n; s++) w.append(writeRec(s));
    await w.close();
    fs.writeFileSync(path.join(d, segmentName(6n)), Buffer.from('RWNDSEG1\x01\x00'));
    const w2 = await open(d);
    expect(w2.lastSeq).toBe(5n);
    expect(fs.readdirSync(d).some((f) => f.startsWith(segmentName(6n)) && f.includes('.torn-'))).toBe(true);
    w2.append(writeRec(6n));
    await w2.close();
    expect((await collect(d)).length).toBe(6);
  });

  it('on open truncates a torn tail and keeps only the bytes it cut, beside the segment', async () => {
    const d = dir();
    const w = await open(d);
    for (let s = 1n; s <= 5n; s++) w.append(writeRec(s, 3000));
    await w.close();
    const seg = path.join(d, segmentName(1n));
    const whole = fs.statSync(seg).size;
    const torn = encodeRecord(writeRec(6n, 3000)).subarray(0, 1000); // a write cut short
    fs.appendFileSync(seg, torn);
    const w2 = await open(d);
    expect(w2.lastSeq).toBe(5n);
    expect(fs.statSync(seg).size).toBe(whole);
    const baks = fs.readdirSync(d).filter((f) => f.startsWith(`${segmentName(1n)}.torn-at-${whole}-`) && f.endsWith('.bak'));
    expect(baks.length).toBe(1);
    expect(fs.readFileSync(path.join(d, baks[0]!)).equals(torn)).toBe(true);
    w2.append(writeRec(6n, 3000));
    await w2.close();
    expect((await collect(d)).map((r) => r.seq)).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
  });

  it('refuses to back up a torn tail past the end of the file, and leaves no backup behind', async () => {
    const d = dir();
    const w = await open(d);
    w.append(writeRec(1n, 100));
    await w.close();
    const seg = path.join(d, segmentName(1n));
    const size = fs.statSync(seg).size;
    await expect(backupTornTail(seg, size + 1)).rejects.toMatchObject({ code: ErrorCodes.JOURNAL_CORRUPT });
    expect(fs.readdirSync(d).filter((f) => f.endsWith('.bak'))).toEqual([]);
    expect(fs.statSync(seg).size).toBe(size);
    const bak = await backupTornTail(seg, size);
    expect(fs.statSync(bak).size).toBe(0); // a tail of nothing is an empty backup
  });

  it('goes on writing while an fdatasync runs, across rotations, and loses or reorders nothing', async () => {
    const d = dir();
    const w = await open(d, { segmentBytes: 64 * 1024 });
    const acked: bigint[] = [];
    const syncs: Promise<void>[] = [];
    let seq = 0n;
    for (let round = 0; round < 80; round++) {
      for (let k = 0; k < 3; k++) w.append(writeRec(++seq, 1500 + round * 13));
      const upTo = seq;
      syncs.push(w.sync().then(() => {
        expect(w.durableSeq >= upTo).toBe(true);
        acked.push(upTo);
      }));
      // The next records arrive in a later turn, while this sync may still be running: they
      // are written beside it, and a rotation must wait for it (it closes the fd).
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(syncs);
    expect(acked).toEqual([...acked].sort((a, b) => (a < b ? -1 : 1)));
    expect(acked.length).toBe(80);
    expect(w.durableSeq).toBe(seq);
    await w.close();
    expect(fs.readdirSync(d).filter((f) => f.endsWith('.seg')).length).toBeGreaterThan(5);
    const recs = await collect(d);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: Number(seq) }, (_, i) => BigInt(i + 1)));
    expect(recs.every(checkRec)).toBe(true);
  });

  it('after a failed fdatasync claims nothing durable, also across a rotation queued behind it', async () => {
    const d = dir();
    const w = await open(d, { segmentBytes: 64 * 1024 });
    const real = fs.fdatasync;
    let calls = 0;
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
    const spy = vi.spyOn(fs, 'fdatasync').mockImplementation(((fd: number, cb: (e: Error | null) => void) => {
      if (calls++ === 0) setTimeout(() => cb(eio), 100);
      else real(fd, cb);
    }) as typeof fs.fdatasync);
    try {
      for (let s = 1n; s <= 10n; s++) w.append(writeRec(s, 3000));
      const first = w.sync();
      first.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 30)); // its fdatasync is running (and will fail)
      for (let s = 11n; s <= 40n; s++) w.append(writeRec(s, 3000)); // past 64 KiB: a rotation
      await expect(first).rejects.toMatchObject({ message: expect.stringMatching(/EIO|i\/o error/) });
      await new Promise((r) => setTimeout(r, 100));
      expect(w.durableSeq).toBe(0n);
      expect(fs.readdirSync(d).filter((f) => f.endsWith('.seg')).length).toBe(1);
      await expect(w.sync()).rejects.toBeInstanceOf(Error);
    } finally {
      spy.mockRestore();
    }
    await w.close().catch(() => undefined);
  });

  it('resolves concurrent syncs in order, each covering what was appended before it, and drains', async () => {
    const d = dir();
    const w = await open(d, { segmentBytes: 256 * 1024 });
    const seen: bigint[] = [];
    const syncs: Promise<void>[] = [];
    for (let s = 1n; s <= 200n; s++) {
      w.append(writeRec(s, 3000));
      if (s % 20n === 0n) {
        const upTo = s;
        syncs.push(w.sync().then(() => {
          expect(w.durableSeq >= upTo).toBe(true);
          seen.push(upTo);
        }));
      }
    }
    expect(w.pendingBytes).toBeGreaterThan(0);
    await w.drain(1);
    expect(w.pendingBytes).toBe(0);
    expect(w.writtenSeq).toBe(200n);
    await Promise.all(syncs);
    expect(seen).toEqual([...seen].sort((a, b) => (a < b ? -1 : 1)));
    expect(seen.length).toBe(10);
    await w.close();
    expect((await collect(d)).length).toBe(200);
  });
});
