import { describe, expect, it } from 'vitest';
import type { Backend } from '../nbd/backend.js';
import { RecordKind, type JournalRecord } from '../journal/record.js';
import { InflightApplies, journalFilter, type SpoolPort } from './journal-filter.js';

/** An in-memory backend whose writes complete after a chosen delay, to expose reordering. */
function memoryBackend(size: number, delays: number[] = []): Backend & { bytes: Buffer; flushes: number } {
  const bytes = Buffer.alloc(size);
  let call = 0;
  const later = () => new Promise<void>((r) => setTimeout(r, delays[call++ % Math.max(delays.length, 1)] ?? 0));
  const b = {
    bytes,
    flushes: 0,
    size: BigInt(size),
    capabilities: { readOnly: false, flush: true, fua: true, trim: true, zero: true, multiConn: true, blockStatus: true, cache: true },
    blockSizes: { minimum: 1, preferred: 4096, maximum: 32 << 20 },
    async pread(buf: Buffer, off: bigint) { bytes.copy(buf, 0, Number(off), Number(off) + buf.length); },
    async pwrite(buf: Buffer, off: bigint) { await later(); buf.copy(bytes, Number(off)); },
    async flush() { b.flushes++; },
    async trim(off: bigint, len: number) { await later(); bytes.fill(0, Number(off), Number(off) + len); },
    async zero(off: bigint, len: number) { await later(); bytes.fill(0, Number(off), Number(off) + len); },
    async blockStatus(off: bigint, len: number) { return [{ offset: off, length: BigInt(len), flags: 0 }]; },
    async cache() {},
    async close() {},
  };
  return b;
}

/**
 * An in-memory spool. With `takeNow`, it also offers the synchronous appendIfRoom() the
 * real spool has, accepting the n-th entry there when takeNow(n) is true (so a test can
 * mix the filter's fast and general paths).
 */
function memorySpool(takeNow?: (n: number) => boolean): SpoolPort & { records: JournalRecord[]; syncs: number } {
  let seq = 0n;
  let offered = 0;
  const take = (e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }): JournalRecord => {
    seq += 1n;
    const rec = { ...e, seq, time: seq, payload: Buffer.from(e.payload) } as JournalRecord;
    s.records.push(rec);
    return rec;
  };
  const s: SpoolPort & { records: JournalRecord[]; syncs: number } = {
    records: [] as JournalRecord[],
    syncs: 0,
    get lastSeq() { return seq; },
    async append(e) { return take(e); },
    async sync() { s.syncs++; return seq; },
  };
  if (takeNow) s.appendIfRoom = (e) => (takeNow(offered++) ? take(e) : undefined);
  return s;
}

function replay(records: JournalRecord[], size: number): Buffer {
  const img = Buffer.alloc(size);
  for (const r of records) {
    const o = Number(r.offset);
    if (r.kind === RecordKind.Write) r.payload.copy(img, o);
    else if (r.kind === RecordKind.Trim || r.kind === RecordKind.Zero) img.fill(0, o, o + r.length);
  }
  return img;
}

describe('journalFilter', () => {
  it('journals every mutation so replay equals the device, even when overlapping writes complete out of order', async () => {
    // The first write is slow and the second fast: without the range lock the device
    // would end with the first write's bytes while the journal says the second came last.
    const backend = memoryBackend(1 << 16, [30, 0, 5, 0]);
    const spool = memorySpool();
    const b = await journalFilter({ spool })(backend);
    await Promise.all([
      b.pwrite(Buffer.alloc(4096, 0xaa), 0n, { fua: false }),
      b.pwrite(Buffer.alloc(1000, 0xbb), 100n, { fua: false }),
      b.zero(50n, 20, { fua: false, noHole: false }),
      b.trim(8192n, 4096, { fua: false }),
    ]);
    // The trim overlaps nothing and may be journaled first; the overlapping three keep
    // their submission order.
    const overlapping = spool.records.filter((r) => r.offset < 4096n).map((r) => [r.kind, r.offset]);
    expect(overlapping).toEqual([[RecordKind.Write, 0n], [RecordKind.Write, 100n], [RecordKind.Zero, 50n]]);
    expect(spool.records).toHaveLength(4);
    expect(replay(spool.records, 1 << 16).equals(backend.bytes)).toBe(true);
  });

  it('keeps journal order equal to device order when writes take the synchronous spool path, alone or mixed with the general one', async () => {
    for (const takeNow of [() => true, (n: number) => n % 2 === 1]) {
      const backend = memoryBackend(1 << 16, [30, 0, 5, 0, 12, 0]);
      const spool = memorySpool(takeNow);
      const b = await journalFilter({ spool })(backend);
      await Promise.all([
        b.pwrite(Buffer.alloc(4096, 0xaa), 0n, { fua: false }),
        b.pwrite(Buffer.alloc(1000, 0xbb), 100n, { fua: false }),
        b.zero(50n, 20, { fua: false, noHole: false }),
        b.pwrite(Buffer.alloc(8192, 0xcc), 2048n, { fua: false }),
        b.trim(20000n, 4096, { fua: false }),
        b.pwrite(Buffer.alloc(10, 0xdd), 2050n, { fua: false }),
      ]);
      const overlapping = spool.records.filter((r) => r.offset < 16384n).map((r) => [r.kind, r.offset]);
      expect(overlapping).toEqual([[RecordKind.Write, 0n], [RecordKind.Write, 100n], [RecordKind.Zero, 50n], [RecordKind.Write, 2048n], [RecordKind.Write, 2050n]]);
      expect(replay(spool.records, 1 << 16).equals(backend.bytes)).toBe(true);
    }
  });

  it('releases the range and reports the error when the backing write fails on the synchronous path', async () => {
    const backend = memoryBackend(1 << 16);
    let fail = true;
    const pwrite = backend.pwrite.bind(backend);
    backend.pwrite = async (buf, off, o) => {
      if (fail) throw new Error('EIO from the device');
      return pwrite(buf, off, o);
    };
    const spool = memorySpool(() => true);
    const b = await journalFilter({ spool })(backend);
    await expect(b.pwrite(Buffer.alloc(512, 1), 0n, { fua: false })).rejects.toThrow('EIO from the device');
    fail = false;
    // The same range again: it would wait forever if the failed write had kept its lock.
    await b.pwrite(Buffer.alloc(512, 2), 0n, { fua: false });
    expect(backend.bytes[0]).toBe(2);
  });

  it('copies a payload sliced from a larger buffer for a spool that keeps it, and hands it over as is to one that does not', async () => {
    const seen: Buffer[] = [];
    const spoolWith = (retainsPayloads: boolean | undefined): SpoolPort => {
      const m = memorySpool();
      const append = m.append.bind(m);
      return Object.assign(m, { retainsPayloads, append: (e: Parameters<SpoolPort['append']>[0]) => (seen.push(e.payload), append(e)) });
    };
    const socketChunk = Buffer.alloc(64 * 1024, 3);
    const slice = socketChunk.subarray(4096, 8192);
    for (const keeps of [undefined, true, false]) {
      const b = await journalFilter({ spool: spoolWith(keeps) })(memoryBackend(1 << 16));
      await b.pwrite(slice, 0n, { fua: false });
    }
    // Kept: a copy of its own, so the 64 KiB chunk is not pinned; not kept: no copy at all.
    expect(seen.map((p) => p.buffer === socketChunk.buffer)).toEqual([false, false, true]);
    for (const p of seen) expect(p.equals(slice)).toBe(true);
  });

  it('makes FLUSH sync the spool and the backing volume', async () => {
    const backend = memoryBackend(4096);
    const spool = memorySpool();
    const b = await journalFilter({ spool })(backend);
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: false });
    await b.flush();
    expect(spool.syncs).toBe(1);
    expect(backend.flushes).toBe(1);
  });

  it('wal: FLUSH and FUA sync the spool only, and the backing volume too once a write missed the spool', async () => {
    const backend = memoryBackend(1 << 16);
    const seen: boolean[] = [];
    const inner = backend.pwrite;
    backend.pwrite = async (buf, off, o) => { seen.push(o.fua); return inner(buf, off, o); };
    let full = false;
    const base = memorySpool();
    const spool: SpoolPort = { get lastSeq() { return base.lastSeq; }, sync: () => base.sync(), append: (e) => (full ? Promise.resolve(null) : base.append(e)) };
    const b = await journalFilter({ spool, wal: true })(backend);
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: false });
    await b.flush();
    await b.pwrite(Buffer.alloc(10, 2), 100n, { fua: true });
    expect(base.syncs).toBe(2);
    expect(backend.flushes).toBe(0);
    expect(seen).toEqual([false, false]);
    // The spool is full: the write lives in the backing volume only.
    full = true;
    await b.pwrite(Buffer.alloc(10, 3), 200n, { fua: true });
    expect(backend.flushes).toBe(1);
    await b.pwrite(Buffer.alloc(10, 4), 300n, { fua: false });
    await b.flush();
    expect(backend.flushes).toBe(2);
    full = false;
    await b.pwrite(Buffer.alloc(10, 5), 400n, { fua: false });
    await b.flush();
    expect(backend.flushes).toBe(2);
  });

  it('wal: a FLUSH that arrives while another FLUSH syncs the backing volume waits for that sync too (multi-conn)', async () => {
    const backend = memoryBackend(1 << 16);
    // The backing fdatasync takes a while: the second FLUSH arrives during it.
    let finish!: () => void;
    backend.flush = () => {
      backend.flushes++;
      return new Promise<void>((r) => (finish = r));
    };
    let full = true;
    const base = memorySpool();
    const spool: SpoolPort = { get lastSeq() { return base.lastSeq; }, sync: () => base.sync(), append: (e) => (full ? Promise.resolve(null) : base.append(e)) };
    const b = await journalFilter({ spool, wal: true })(backend);
    // Acknowledged while the spool is full: only the backing volume holds it.
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: false });
    full = false;
    const done: string[] = [];
    const first = b.flush().then(() => done.push('first'));
    await new Promise((r) => setImmediate(r));
    const second = b.flush().then(() => done.push('second'));
    await new Promise((r) => setTimeout(r, 20));
    // Neither may report the write durable before the backing volume's sync ends.
    expect(done).toEqual([]);
    finish();
    await Promise.all([first, second]);
    expect(done.sort()).toEqual(['first', 'second']);
    expect(backend.flushes).toBe(1);
  });

  it('wal: when the shared backing sync fails, every FLUSH waiting on it fails and the next one syncs the backing volume again', async () => {
    const backend = memoryBackend(1 << 16);
    let fail!: (e: Error) => void;
    const inner = backend.flush.bind(backend);
    let failing = true;
    backend.flush = () => (failing ? (backend.flushes++, new Promise<void>((_, j) => (fail = j))) : inner());
    const base = memorySpool();
    const spool: SpoolPort = { get lastSeq() { return base.lastSeq; }, sync: () => base.sync(), append: () => Promise.resolve(null) };
    const b = await journalFilter({ spool, wal: true })(backend);
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: false });
    const first = b.flush();
    await new Promise((r) => setImmediate(r));
    const second = b.flush();
    fail(new Error('EIO from fdatasync'));
    await expect(first).rejects.toThrow('EIO from fdatasync');
    await expect(second).rejects.toThrow('EIO from fdatasync');
    failing = false;
    await b.flush();
    expect(backend.flushes).toBe(2);
  });

  it('in flush-sync mode waits for the collector at FLUSH and FUA but not on plain writes', async () => {
    const waited: bigint[] = [];
    const spool = memorySpool();
    const b = await journalFilter({ spool, mode: 'flush-sync', waitRemote: async (s) => { waited.push(s); } })(memoryBackend(8192));
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: false });
    expect(waited).toEqual([]);
    await b.pwrite(Buffer.alloc(10, 2), 100n, { fua: true });
    expect(waited).toEqual([2n]);
    await b.pwrite(Buffer.alloc(10, 3), 200n, { fua: false });
    await b.flush();
    expect(waited).toEqual([2n, 3n]);
  });

  it('in async mode never waits for the collector: FLUSH and FUA make the local spool durable only', async () => {
    const waited: bigint[] = [];
    const spool = memorySpool();
    const b = await journalFilter({ spool, mode: 'async', waitRemote: async (s) => { waited.push(s); } })(memoryBackend(8192));
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: true });
    await b.pwrite(Buffer.alloc(10, 2), 100n, { fua: false });
    await b.flush();
    expect(waited).toEqual([]);
    expect(spool.syncs).toBe(2); // the FUA write, the FLUSH
  });

  it('in sync mode waits for the collector on every mutation', async () => {
    const waited: bigint[] = [];
    const b = await journalFilter({ spool: memorySpool(), mode: 'sync', waitRemote: async (s) => { waited.push(s); } })(memoryBackend(8192));
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: false });
    await b.trim(0n, 512, { fua: false });
    expect(waited).toEqual([1n, 2n]);
  });

  it('refuses a remote durability mode without a shipper', () => {
    expect(() => journalFilter({ spool: memorySpool(), mode: 'flush-sync' })).toThrow(/needs a shipper/);
  });

  it('in sync mode a write the full spool sent to the dirty bitmap waits for its resend to be durable at the collector', async () => {
    const spool = memorySpool();
    let diverted = 0;
    Object.defineProperty(spool, 'divertedWrites', { get: () => diverted });
    spool.append = async () => (diverted++, null);
    const waited: Array<[bigint, number | undefined]> = [];
    let ack!: () => void;
    const backend = memoryBackend(4096);
    const b = await journalFilter({ spool, mode: 'sync', waitRemote: (s, o) => (waited.push([s, o?.diverted]), new Promise<void>((r) => (ack = r))) })(backend);
    let done = false;
    const w = b.pwrite(Buffer.alloc(4, 7), 0n, { fua: false }).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(backend.bytes[0]).toBe(7);
    expect(waited).toEqual([[0n, 1]]);
    expect(done).toBe(false);
    ack();
    await w;
  });

  it('in flush-sync mode a FLUSH after writes sent to the dirty bitmap waits for their resend, a plain write does not', async () => {
    const spool = memorySpool();
    let diverted = 0;
    let full = false;
    Object.defineProperty(spool, 'divertedWrites', { get: () => diverted });
    const append = spool.append.bind(spool);
    spool.append = async (e) => (full ? (diverted++, null) : append(e));
    const waited: Array<[bigint, number | undefined]> = [];
    const b = await journalFilter({ spool, mode: 'flush-sync', waitRemote: async (s, o) => { waited.push([s, o?.diverted]); } })(memoryBackend(8192));
    await b.pwrite(Buffer.alloc(10, 1), 0n, { fua: false });
    full = true;
    await b.pwrite(Buffer.alloc(10, 2), 100n, { fua: false });
    expect(waited).toEqual([]);
    await b.flush();
    expect(waited).toEqual([[1n, 1]]);
  });
});

describe('InflightApplies', () => {
  it('settles once the writes running at the call have ended, not later ones', async () => {
    const applies = new InflightApplies();
    await applies.settled(); // nothing running: resolves at once
    const first = applies.begin();
    const second = applies.begin();
    let settled = false;
    const s = applies.settled().then(() => (settled = true));
    const later = applies.begin();
    applies.end(second);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    applies.end(first);
    await s;
    expect(settled).toBe(true);
    applies.end(later);
  });

  it('tracks a promise from start to settlement, rejected ones included', async () => {
    const applies = new InflightApplies();
    let fail!: (e: Error) => void;
    const p = applies.track(new Promise<void>((_, reject) => (fail = reject)));
    p.catch(() => undefined);
    let settled = false;
    const s = applies.settled().then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    fail(new Error('device gone'));
    await s;
    expect(settled).toBe(true);
  });
});
