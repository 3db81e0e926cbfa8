import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HybridClock, ManualWallClock } from '../core/hlc.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import { RESEND_BEGIN_MARK } from '../journal/resend-marks.js';
import { collect, tempDir } from '../../test/helpers/journal-fixtures.js';
import { coalesceBatch } from './spool-coalesce.js';
import { Spool, type SpoolOptions } from './spool.js';

const dirs: string[] = [];
function dir(): string {
  const d = tempDir('rewind-spool-');
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
const base = (o: Partial<SpoolOptions> = {}): SpoolOptions => ({ volumeSize: 64n * BigInt(MiB), maxBytes: 4 * MiB, fullPolicy: 'block', segmentBytes: MiB, ...o });
const write = (offset: number, len: number, fill = 1) => ({ kind: RecordKind.Write, flags: 0, offset: BigInt(offset), length: len, payload: Buffer.alloc(len, fill) });

describe('Spool', () => {
  it('runs beforeFree before it deletes acked segments, and not when nothing is freed', async () => {
    const d = dir();
    const calls: number[] = [];
    const segFiles = () => fs.readdirSync(path.join(d, 'journal')).filter((f) => f.endsWith('.seg')).length;
    const s = await Spool.open(d, base({ maxBytes: 8 * MiB, segmentBytes: 256 * 1024, beforeFree: async () => void calls.push(segFiles()) }));
    for (let i = 0; i < 20; i++) await s.append(write(i * 65536, 65536, i));
    await s.sync();
    const before = segFiles();
    expect(before).toBeGreaterThan(3);
    await s.ack(1n);
    expect(calls).toEqual([]);
    await s.ack(15n);
    // Called once, while every segment still existed; the segments went after it.
    expect(calls).toEqual([before]);
    expect(segFiles()).toBeLessThan(before);
    await s.close();
  });

  it('keeps nothing of a payload without a tail cache, so the caller may reuse its buffer; with one it keeps the buffer', async () => {
    const d = dir();
    const s = await Spool.open(d, base({ tailCacheBytes: 0 }));
    expect(s.retainsPayloads).toBe(false);
    const buf = Buffer.alloc(10_000, 7);
    await s.append({ kind: RecordKind.Write, flags: 0, offset: 0n, length: buf.length, payload: buf });
    buf.fill(9); // reused by the NBD layer for the next request
    await s.sync();
    const [back] = await s.read(1n);
    expect(back!.payload.equals(Buffer.alloc(10_000, 7))).toBe(true);
    await s.close();
    expect((await collect(path.join(d, 'journal')))[0]!.payload.equals(Buffer.alloc(10_000, 7))).toBe(true);
    const s2 = await Spool.open(dir(), base());
    expect(s2.retainsPayloads).toBe(true);
    await s2.close();
  });

  it('assigns consecutive seqs and increasing HLC times, and reads entries back from memory and disk', async () => {
    const d = dir();
    const clock = new HybridClock(new ManualWallClock().read);
    const s = await Spool.open(d, base({ clock }));
    const recs: JournalRecord[] = [];
    for (let i = 0; i < 40; i++) recs.push((await s.append(write(i * 65536, 65536, i)))!);
    const m = await s.mark('after-40');
    expect(m.seq).toBe(41n);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => BigInt(i + 1)));
    for (let i = 1; i < recs.length; i++) expect(recs[i].time > recs[i - 1].time).toBe(true);
    expect(await s.sync()).toBe(41n);
    const batch = await s.read(1n, { maxRecords: 10 });
    expect(batch.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i + 1)));
    const all = await s.read(1n, { maxRecords: 1000, maxBytes: 64 * MiB });
    expect(all.length).toBe(41);
    expect(all[40].payload.toString()).toBe('after-40');
    await s.close();
    // After a restart everything comes from disk.
    const s2 = await Spool.open(d, base());
    const disk = await s2.read(5n, { maxRecords: 1000, maxBytes: 64 * MiB });
    expect(disk[0].seq).toBe(5n);
    expect(disk.length).toBe(37);
    expect(disk[0].payload.equals(Buffer.alloc(65536, 4))).toBe(true);
    await s2.close();
  });

  it('blocks appends when full under the block policy and resumes after ack frees segments', async () => {
    const s = await Spool.open(dir(), base({ maxBytes: 2 * MiB, segmentBytes: 512 * 1024 }));
    const states: string[] = [];
    s.onState((st) => states.push(st));
    for (let i = 0; i < 31; i++) await s.append(write(0, 65536));
    let done = false;
    const p = s.append(write(0, 65536)).then((r) => { done = true; return r; });
    const q = s.append(write(0, 65536)); // queued behind, FIFO
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    expect(s.state).toBe('blocked');
    await s.sync();
    await s.ack(20n);
    const r = await p;
    expect(r!.seq).toBe(32n);
    expect((await q)!.seq).toBe(33n);
    expect(s.state).toBe('ok');
    expect(states).toEqual(['blocked', 'ok']);
    expect(s.bytes).toBeLessThanOrEqual(2 * MiB);
    await s.close();
  });

  it('falls back to the dirty bitmap when full, and clears only what was resent', async () => {
    const d = dir();
    const s = await Spool.open(d, base({ maxBytes: 1 * MiB, segmentBytes: 256 * 1024, fullPolicy: 'dirty-bitmap' }));
    let nulls = 0;
    for (let i = 0; i < 20; i++) if ((await s.append(write(i * 65536, 65536))) === null) nulls++;
    expect(nulls).toBeGreaterThan(0);
    expect(s.state).toBe('dirty-tracking');
    const ext = s.dirtyExtents();
    expect(ext.length).toBe(1);
    expect(Number(ext[0].offset) % 65536).toBe(0);
    expect(ext[0].offset + BigInt(ext[0].length)).toBe(20n * 65536n);
    // The first write the journal missed was preceded by one resend-begin mark (not one
    // per missed write), so the collector refuses instants from then on.
    await s.sync();
    const journaled = await s.read(1n, { maxRecords: 1024, maxBytes: 64 * MiB });
    const marks = journaled.filter((r) => r.kind === RecordKind.Mark).map((r) => r.payload.toString());
    expect(marks).toEqual([RESEND_BEGIN_MARK]);
    expect(journaled[journaled.length - 1]!.kind).toBe(RecordKind.Mark);
    // A mark is never dropped, even when full.
    expect((await s.mark('m')).kind).toBe(RecordKind.Mark);
    await s.sync();
    await s.close();
    // The bitmap survives a restart, checksummed.
    const s2 = await Spool.open(d, base({ maxBytes: 1 * MiB, segmentBytes: 256 * 1024, fullPolicy: 'dirty-bitmap' }));
    expect(s2.needsFullResync).toBe(false);
    expect(s2.dirtyExtents()).toEqual(ext);
    const ext2 = s2.dirtyExtents();
    expect(await s2.append(write(Number(ext2[0].offset), 65536))).toBeNull(); // re-marked after the snapshot
    await s2.clearDirty(ext2);
    expect(s2.dirtyExtents()).toEqual([{ offset: ext2[0].offset, length: 65536 }]);
    await s2.clearDirty(s2.dirtyExtents());
    expect(s2.state).toBe('ok');
    await s2.close();
  });

  it('requires a full resync when the dirty bitmap fails its checksum, or was not saved cleanly', async () => {
    const d = dir();
    const o = base({ maxBytes: 1 * MiB, segmentBytes: 256 * 1024, fullPolicy: 'dirty-bitmap' });
    const s = await Spool.open(d, o);
    for (let i = 0; i < 20; i++) await s.append(write(0, 65536));
    await s.close();
    const bm = path.join(d, 'dirty.bitmap');
    const b = fs.readFileSync(bm);
    b[b.length - 10] ^= 0xff;
    fs.writeFileSync(bm, b);
    const s2 = await Spool.open(d, o);
    expect(s2.needsFullResync).toBe(true);
    await s2.fullResyncDone();
    await s2.close();
    const s3 = await Spool.open(d, o);
    expect(s3.needsFullResync).toBe(false);
    await s3.close();
    fs.unlinkSync(bm);
    const s4 = await Spool.open(d, o);
    expect(s4.needsFullResync).toBe(true); // missing but expected
    await s4.close();

    // Unclean: marks made after the last save, then a "crash" (no sync/close).
    const d2 = dir();
    const c = await Spool.open(d2, o);
    for (let i = 0; i < 20; i++) await c.append(write(0, 65536));
    await c.sync();
    expect(await c.append(write(65536 * 5, 65536))).toBeNull();
    const c2 = await Spool.open(d2, o); // c is abandoned, as a killed process would leave it
    expect(c2.needsFullResync).toBe(true);
    await c2.close();
  });

  it('persists ackedSeq and lastSeq across a restart', async () => {
    const d = dir();
    const s = await Spool.open(d, base());
    for (let i = 0; i < 10; i++) await s.append(write(0, 4096));
    await s.ack(7n);
    await s.close();
    const s2 = await Spool.open(d, base());
    expect(s2.lastSeq).toBe(10n);
    expect(s2.ackedSeq).toBe(7n);
    expect((await s2.append(write(0, 10)))!.seq).toBe(11n);
    await expect(s2.ack(99n)).rejects.toThrow(/beyond the last entry/);
    await s2.close();
  });

  it('recovers after being abandoned without close (as after kill -9) and reads back in batches across segments', async () => {
    const d = dir();
    const o = base({ maxBytes: 64 * MiB, segmentBytes: 64 * 1024 });
    const s = await Spool.open(d, o);
    for (let i = 0; i < 100; i++) await s.append(write(i * 512, 3000, i));
    await s.sync();
    await s.ack(4n);
    for (let i = 100; i < 105; i++) await s.append(write(i * 512, 3000, i));
    const s2 = await Spool.open(d, o); // s is never closed
    expect(s2.lastSeq >= 100n).toBe(true);
    expect(s2.ackedSeq).toBe(4n);
    let next = 5n;
    for (let guard = 0; guard < 100 && next <= s2.lastSeq; guard++) {
      const b = await s2.read(next, { maxRecords: 7 });
      expect(b[0].seq).toBe(next);
      for (const r of b) expect(r.payload.equals(Buffer.alloc(3000, Number(r.seq) - 1))).toBe(true);
      next = b[b.length - 1].seq + 1n;
    }
    expect(next).toBe(s2.lastSeq + 1n);
    await s2.close();
  });

  it('frees whole segments on ack and refuses to read freed entries', async () => {
    const d = dir();
    const s = await Spool.open(d, base({ maxBytes: 64 * MiB, segmentBytes: 256 * 1024 }));
    for (let i = 0; i < 64; i++) await s.append(write(0, 16384));
    await s.sync();
    const before = s.bytes;
    await s.ack(60n);
    expect(s.bytes).toBeLessThan(before);
    expect(s.firstSeq).toBeGreaterThan(1n);
    await expect(s.read(1n)).rejects.toThrow(/was freed/);
    expect((await s.read(61n)).map((r) => r.seq)).toEqual([61n, 62n, 63n, 64n]);
    await s.close();
    expect((await collect(path.join(d, 'journal')))[0].seq).toBe(s.firstSeq);
  });

  it('wakes waitForRecords on append and on abort', async () => {
    const s = await Spool.open(dir(), base());
    let woke = false;
    const p = s.waitForRecords(0n).then(() => (woke = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(woke).toBe(false);
    await s.append(write(0, 10));
    await p;
    expect(woke).toBe(true);
    const ac = new AbortController();
    const q = s.waitForRecords(5n, ac.signal);
    ac.abort();
    await q;
    await s.close();
  });

  it('coalesces entries covered later in the same batch into placeholders, never across a mark', async () => {
    const s = await Spool.open(dir(), base());
    await s.append(write(0, 8192, 1)); // 1: covered by 3
    await s.append(write(100000, 4096, 2)); // 2: kept
    await s.append(write(0, 4096, 3)); // 3: covered by 4+5 together
    await s.append(write(4096, 4096, 4)); // 4
    await s.append({ kind: RecordKind.Zero, flags: 0, offset: 0n, length: 4096, payload: Buffer.alloc(0) }); // 5
    await s.mark('barrier'); // 6
    await s.append(write(100000, 4096, 7)); // 7: would cover 2, but the mark is between
    // Readable once written to the segment file.
    expect(await s.read(1n)).toEqual([]);
    await s.waitForRecords(6n);
    const plain = await s.read(1n);
    expect(plain.every((r) => (r.flags & RecordFlag.Coalesced) === 0)).toBe(true);
    const c = await s.read(1n, { coalesce: true });
    expect(c.map((r) => r.seq)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n]);
    const dropped = c.filter((r) => r.flags & RecordFlag.Coalesced).map((r) => r.seq);
    expect(dropped).toEqual([1n, 3n]);
    expect(c[0].length).toBe(0);
    expect(c[0].payload.length).toBe(0);
    // A batch boundary is the window: reading from 3 alone cannot see what covers 1.
    expect(coalesceBatch(plain.slice(0, 2)).records.every((r) => r.length > 0)).toBe(true);
    await s.close();
  });
});
