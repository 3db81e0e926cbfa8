import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Backend, Extent } from '../nbd/backend.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import { runBaseCopy } from './base-copy.js';
import { journalFilter } from './journal-filter.js';
import { RangeLock } from './range-lock.js';

const BLOCK = 64 * 1024;

/** A memory backend with a zero map per 64 KiB block and writes that complete after a random delay. */
function memoryBackend(size: number): Backend & { bytes: Buffer } {
  const bytes = Buffer.alloc(size);
  const later = () => new Promise<void>((r) => setTimeout(r, Math.random() * 2));
  return {
    bytes,
    size: BigInt(size),
    capabilities: { readOnly: false, flush: true, fua: true, trim: true, zero: true, multiConn: true, blockStatus: true, cache: true },
    blockSizes: { minimum: 1, preferred: 4096, maximum: 32 << 20 },
    async pread(buf, off) {
      await later();
      bytes.copy(buf, 0, Number(off), Number(off) + buf.length);
    },
    async pwrite(buf, off) {
      await later();
      buf.copy(bytes, Number(off));
    },
    async flush() {},
    async trim(off, len) {
      await later();
      bytes.fill(0, Number(off), Number(off) + len);
    },
    async zero(off, len) {
      await later();
      bytes.fill(0, Number(off), Number(off) + len);
    },
    async blockStatus(off, len) {
      const out: Extent[] = [];
      for (let b = Number(off); b < Number(off) + len; b += BLOCK) {
        const zero = bytes.subarray(b, b + BLOCK).every((x) => x === 0);
        out.push({ offset: BigInt(b), length: BigInt(Math.min(BLOCK, Number(off) + len - b)), flags: zero ? 3 : 0 });
      }
      return out;
    },
    async cache() {},
    async close() {},
  };
}

function recordingSpool() {
  let seq = 0n;
  const records: JournalRecord[] = [];
  return {
    records,
    get lastSeq() {
      return seq;
    },
    async append(e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }) {
      seq += 1n;
      const rec: JournalRecord = { ...e, seq, time: seq, payload: Buffer.from(e.payload) };
      records.push(rec);
      return rec;
    },
    async sync() {
      return seq;
    },
  };
}

function replay(records: JournalRecord[], size: number, upTo: bigint): Buffer {
  const img = Buffer.alloc(size);
  for (const r of records) {
    if (r.seq > upTo) break;
    const o = Number(r.offset);
    if (r.kind === RecordKind.Write) r.payload.copy(img, o);
    else if (r.kind === RecordKind.Trim || r.kind === RecordKind.Zero) img.fill(0, o, o + r.length);
  }
  return img;
}

describe('base copy', () => {
  it('while writes continue, the journal replayed to protection start (and to the end) equals the device', async () => {
    const size = 4 * 1024 * 1024;
    const backing = memoryBackend(size);
    // Pre-existing data in half of the blocks; the rest is zero and must be skipped.
    for (let b = 0; b < size; b += 2 * BLOCK) randomBytes(BLOCK).copy(backing.bytes, b);
    const spool = recordingSpool();
    const lock = new RangeLock();
    const dev = await journalFilter({ spool, lock })(backing);

    let stop = false;
    let paused = false;
    const inflight = new Set<Promise<void>>();
    const writer = (async () => {
      for (let i = 0; i < 100_000 && !stop; i++) {
        if (paused) {
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        const off = BigInt(Math.floor(Math.random() * (size / 4096 - 8)) * 4096);
        const len = 4096 * (1 + Math.floor(Math.random() * 8));
        const p = Math.random() < 0.1 ? dev.trim(off, len, { fua: false }) : dev.pwrite(randomBytes(len), off, { fua: false });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        if (inflight.size >= 8) await Promise.race(inflight);
      }
    })();

    const result = await runBaseCopy({ backend: backing, spool, lock, chunkSize: 48 * 1024 });
    // Quiesce writes so "now" is a well-defined instant to compare against.
    paused = true;
    await Promise.all(inflight);
    const atStart = Buffer.from(backing.bytes);
    const seqNow = spool.lastSeq;
    expect(result.protectionStartSeq).toBeGreaterThan(0n);
    expect(result.protectionStartSeq).toBeLessThanOrEqual(seqNow);
    expect(replay(spool.records, size, seqNow).equals(atStart)).toBe(true);
    // Zero blocks were skipped: far less than the volume was copied.
    expect(result.bytesCopied).toBeLessThan(BigInt(size * 0.75));
    expect(spool.records.filter((r) => r.flags & RecordFlag.Base).length).toBe(result.chunks);

    paused = false;
    await new Promise((r) => setTimeout(r, 30));
    stop = true;
    await writer;
    await Promise.all(inflight);
    expect(replay(spool.records, size, spool.lastSeq).equals(backing.bytes)).toBe(true);
  });

  it('resync: ZERO entries never erase a write that landed after the plan was made', async () => {
    const size = 4 * 1024 * 1024;
    const backing = memoryBackend(size);
    for (let b = 0; b < size; b += 4 * BLOCK) randomBytes(BLOCK).copy(backing.bytes, b);
    const spool = recordingSpool();
    const lock = new RangeLock();
    const dev = await journalFilter({ spool, lock })(backing);
    // Writes aimed at blocks that are zero now, racing the copy.
    let stop = false;
    const writer = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) {
        const block = 4 * Math.floor(Math.random() * (size / BLOCK / 4)) + 1 + Math.floor(Math.random() * 3);
        await dev.pwrite(randomBytes(4096), BigInt(block * BLOCK), { fua: false });
      }
    })();
    await runBaseCopy({ backend: backing, spool, lock, chunkSize: 64 * 1024, zeros: 'record' });
    stop = true;
    await writer;
    // The other side held anything at all before the resync: start from garbage.
    const img = Buffer.alloc(size, 0xaa);
    for (const r of spool.records) {
      const o = Number(r.offset);
      if (r.kind === RecordKind.Write) r.payload.copy(img, o);
      else img.fill(0, o, o + r.length);
    }
    expect(img.equals(backing.bytes)).toBe(true);
  });

  it('initial copy: data written after protection started is not copied a second time', async () => {
    const size = 8 * 1024 * 1024;
    const backing = memoryBackend(size);
    randomBytes(1024 * 1024).copy(backing.bytes, 0);
    const spool = recordingSpool();
    const lock = new RangeLock();
    const dev = await journalFilter({ spool, lock })(backing);
    // A sequential writer filling the empty upper half while the copy runs.
    const writer = (async () => {
      for (let off = 4 * 1024 * 1024; off < size; off += 64 * 1024) await dev.pwrite(randomBytes(64 * 1024), BigInt(off), { fua: false });
    })();
    const r = await runBaseCopy({ backend: backing, spool, lock, chunkSize: 64 * 1024 });
    await writer;
    expect(r.bytesCopied).toBe(1024n * 1024n);
    expect(replay(spool.records, size, spool.lastSeq).equals(backing.bytes)).toBe(true);
  });

  it('copies nothing for an all-zero volume', async () => {
    const backing = memoryBackend(1024 * 1024);
    const spool = recordingSpool();
    const r = await runBaseCopy({ backend: backing, spool, lock: new RangeLock() });
    expect(r).toEqual({ protectionStartSeq: 0n, bytesCopied: 0n, chunks: 0 });
  });
});
