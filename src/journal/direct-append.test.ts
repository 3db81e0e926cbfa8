import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRec, collect, tempDir, writeRec } from '../../test/helpers/journal-fixtures.js';
import { chunkPoolStats, DIRECT_ALIGN, KEEP_IDLE_CHUNKS, logAt, openSegmentFile, SegmentLog } from './direct-append.js';
import { segmentName } from './segment.js';
import { readJournal } from './reader.js';
import { SegmentScanner } from './scan.js';
import { verifyJournal } from './verify.js';
import { JournalWriter } from './writer.js';

const dirs: string[] = [];
function dir(): string {
  const d = tempDir('rewind-direct-');
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed) & 255;
  return b;
}

describe('SegmentLog', () => {
  it('gives the memory of a burst back once it is idle, keeping a bounded reserve warm', async () => {
    const before = chunkPoolStats();
    const logs = [new SegmentLog(0), new SegmentLog(0)];
    const piece = pattern(1 << 20, 5);
    // 2 × 80 MiB held at once, as two writers' queues in a burst.
    for (let i = 0; i < 80; i++) for (const l of logs) l.append([piece]);
    const during = chunkPoolStats();
    expect(during.memories).toBeGreaterThanOrEqual(before.memories + 19);
    for (const l of logs) l.release();
    const after = chunkPoolStats();
    expect(after.idleChunks).toBeLessThanOrEqual(KEEP_IDLE_CHUNKS + 8);
    expect(after.memories).toBeLessThan(during.memories - 10);
    // What is left is handed out again, and a new log still works.
    const again = new SegmentLog(0);
    again.append([piece]);
    expect(chunkPoolStats().idleChunks).toBeLessThan(after.idleChunks);
    again.release();
  });

  it('lays pieces of any size end to end, across blocks and staging chunks, padded with zeros only past the end', async () => {
    const f = path.join(dir(), 'seg');
    const { fd, direct } = openSegmentFile(f, true);
    expect(direct).toBe(true);
    const log = new SegmentLog(0);
    const want: Buffer[] = [];
    // Sizes chosen to end inside a block, exactly on one, and to straddle the 1 MiB chunks.
    const sizes = [1, 63, 4096 - 64, 4096, 5000, (1 << 20) - 7, 3 << 20, 12, 1 << 20, 777];
    let seed = 1;
    for (const n of sizes) {
      const piece = [pattern(n, seed++), pattern(48, seed++)];
      want.push(...piece.map((b) => Buffer.from(b)));
      log.append(piece);
      // The caller's buffers are free once append returns.
      piece[0]!.fill(0xee);
      const all = Buffer.concat(want);
      expect(log.position).toBe(all.length);
      await log.writeTo(fd, all.length);
      const onDisk = fs.readFileSync(f);
      expect(onDisk.length).toBe(Math.ceil(all.length / DIRECT_ALIGN) * DIRECT_ALIGN);
      expect(onDisk.subarray(0, all.length).equals(all)).toBe(true);
      expect(onDisk.subarray(all.length).every((b) => b === 0)).toBe(true);
    }
    log.finish(fd);
    fs.closeSync(fd);
    expect(fs.readFileSync(f).equals(Buffer.concat(want))).toBe(true);
  });

  it('writes only up to the target while later appends wait in memory', async () => {
    const f = path.join(dir(), 'seg');
    const { fd } = openSegmentFile(f, true);
    const log = new SegmentLog(0);
    const a = pattern(6000, 1);
    const b = pattern(9000, 2);
    log.append([a]);
    log.append([b]);
    const first = log.writeTo(fd, a.length);
    log.append([pattern(100, 3)]);
    await first;
    const onDisk = fs.readFileSync(f);
    expect(onDisk.subarray(0, a.length).equals(a)).toBe(true);
    expect(onDisk.subarray(a.length).every((x) => x === 0)).toBe(true);
    await log.writeTo(fd, a.length + b.length);
    log.finish(fd);
    fs.closeSync(fd);
    expect(fs.readFileSync(f).equals(Buffer.concat([a, b]))).toBe(true);
    expect(() => log.append([a])).toThrow(/released/);
  });

  it('continues a file at its logical end, keeping the bytes of the partial block', async () => {
    const f = path.join(dir(), 'seg');
    const head = pattern(10_000, 9);
    fs.writeFileSync(f, head);
    const { fd } = openSegmentFile(f, false);
    const log = logAt(fd, f, head.length);
    const tail = pattern(3000, 4);
    log.append([tail]);
    await log.writeTo(fd, log.position);
    log.finish(fd);
    fs.closeSync(fd);
    expect(fs.readFileSync(f).equals(Buffer.concat([head, tail]))).toBe(true);
  });

  it('refuses to continue past the end of a file that is shorter than claimed', () => {
    const f = path.join(dir(), 'seg');
    fs.writeFileSync(f, pattern(100, 1));
    const { fd } = openSegmentFile(f, false);
    expect(() => logAt(fd, f, 200)).toThrow(/shorter/);
    fs.closeSync(fd);
  });
});

describe('JournalWriter with directIo', () => {
  it('leaves every segment but the last without padding, so a full verify is clean', async () => {
    const d = dir();
    const w = await JournalWriter.open(d, { directIo: true, segmentBytes: 1 << 20 });
    for (let s = 1n; s <= 300n; s++) w.append(writeRec(s, 1000 + Number(s) * 97));
    await w.sync();
    // Live: the tail is padded, which readers take as the end of the log.
    expect((await collect(d)).length).toBe(300);
    const live = await verifyJournal(d);
    expect(live.corruptions).toEqual([]);
    const lastSeg = fs.readdirSync(d).filter((f) => f.endsWith('.seg')).sort().at(-1)!;
    expect(fs.statSync(path.join(d, lastSeg)).size % DIRECT_ALIGN).toBe(0);
    expect(live.tornTail).toEqual(expect.objectContaining({ segment: lastSeg, padding: true }));
    await w.close();
    const rep = await verifyJournal(d);
    expect(rep.corruptions).toEqual([]);
    expect(rep.tornTail).toBeUndefined();
    expect(rep.records).toBe(300);
    expect(w.segmentCount).toBeGreaterThan(3);
  });

  it('after a crash (no close), reopens at the last record, drops the padding and appends on', async () => {
    const d = dir();
    const w = await JournalWriter.open(d, { directIo: true });
    for (let s = 1n; s <= 40n; s++) w.append(writeRec(s, 333));
    await w.sync();
    // The state a kill -9 leaves: copy the directory while the writer still has it open.
    const crashed = dir();
    for (const f of fs.readdirSync(d)) fs.copyFileSync(path.join(d, f), path.join(crashed, f));
    await w.close();
    const seg = path.join(crashed, segmentName(1n));
    expect(fs.statSync(seg).size % DIRECT_ALIGN).toBe(0);
    const w2 = await JournalWriter.open(crashed, { directIo: true });
    expect(w2.lastSeq).toBe(40n);
    // The padding is dropped without a backup copy of the segment (every unclean stop leaves it).
    expect(fs.readdirSync(crashed).filter((f) => f.endsWith('.bak'))).toEqual([]);
    for (let s = 41n; s <= 60n; s++) w2.append(writeRec(s, 5000));
    await w2.close();
    const recs = await collect(crashed);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 60 }, (_, i) => BigInt(i + 1)));
    expect(recs.every(checkRec)).toBe(true);
    expect((await verifyJournal(crashed)).corruptions).toEqual([]);
  });
});

describe('readers of a journal being written directly', () => {
  it('take a record written over the padding while they read for the live end of the log, not corruption', async () => {
    const d = dir();
    const w = await JournalWriter.open(d, { directIo: true });
    for (let s = 1n; s <= 5n; s++) w.append(writeRec(s, 200));
    await w.sync();
    const seg = path.join(d, segmentName(1n));
    const sc = await SegmentScanner.open(seg, { resync: true });
    const first = await sc.next(); // the scanner now holds the file as it was, padding included
    expect(first!.record.seq).toBe(1n);
    for (let s = 6n; s <= 8n; s++) w.append(writeRec(s, 200));
    await w.sync(); // rewrites the padded block under the scanner
    let n = 1;
    while (await sc.next()) n++;
    await sc.close();
    expect(n).toBe(5);
    expect(sc.problems).toHaveLength(1);
    expect(sc.problems[0]).toEqual(expect.objectContaining({ reason: 'short', nextValid: null }));
    expect(sc.problems[0]!.detail).toMatch(/changed while they were read/);
    await w.close();
  });

  it('stop at toSeq without reading the record after it', async () => {
    const d = dir();
    const w = await JournalWriter.open(d);
    for (let s = 1n; s <= 5n; s++) w.append(writeRec(s, 300));
    await w.close();
    // Damage record 4 (record 5 after it still decodes: corruption for any reader that gets there).
    const seg = path.join(d, segmentName(1n));
    const b = fs.readFileSync(seg);
    const rec = 48 + 300;
    b[40 + 3 * rec + 60] ^= 0xff;
    fs.writeFileSync(seg, b);
    const got: bigint[] = [];
    for await (const r of readJournal(d, { toSeq: 3n })) got.push(r.seq);
    expect(got).toEqual([1n, 2n, 3n]);
    await expect(collect(d)).rejects.toThrow(/corrupt|crc/i);
  });
});
