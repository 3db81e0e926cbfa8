import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCollectorGrpc, type CollectorGrpcServer } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/index.js';
import { readJournal } from '../../src/journal/reader.js';
import { RecordKind, type JournalRecord } from '../../src/journal/record.js';
import { Shipper } from '../../src/ship/shipper.js';
import { Spool } from '../../src/ship/spool.js';
import { RecordFlag } from '../../src/journal/record.js';
import { collectorClient } from '../../src/rpc/transport.js';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import { MemorySpool, randomMutation, replay, waitFor } from '../helpers/stream-fixtures.js';

const SIZE = 4 * 1024 * 1024;
const TOKEN = 'ship-token-1';

let dir: string;
let store: CollectorStore;
let server: CollectorGrpcServer;

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-stream-ship-'));
  store = await CollectorStore.open(dir);
  server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

function same(a: JournalRecord, b: JournalRecord): boolean {
  return a.seq === b.seq && a.time === b.time && a.kind === b.kind && a.flags === b.flags && a.offset === b.offset && a.length === b.length && a.payload.equals(b.payload);
}

/** Restore through the gRPC API (a real client of the service) into a buffer. */
async function restoreViaGrpc(volume: string, seq: bigint | 'now'): Promise<Buffer> {
  const client = collectorClient({ address: server.address, allowPlaintext: true });
  const img = Buffer.alloc(SIZE);
  try {
    const call = (client.Restore as (req: unknown) => grpc.ClientReadableStream<{ offset: string; data: Buffer; zero_length: string }>)({
      volume,
      token: TOKEN,
      at: seq === 'now' ? null : { seq: seq.toString() },
    });
    for await (const c of call) {
      const off = Number(c.offset);
      if (Number(c.zero_length) > 0) img.fill(0, off, off + Number(c.zero_length));
      else c.data.copy(img, off);
    }
  } finally {
    client.close();
  }
  return img;
}

describe('shipping a stream to the collector', () => {
  it('delivers a randomized stream so that the collector journal equals the spool, record for record', async () => {
    const spool = new MemorySpool();
    const shipper = new Shipper({ spool, volume: 'vol-a', size: BigInt(SIZE), token: TOKEN, target: { address: server.address, allowPlaintext: true }, mode: 'flush-sync', maxBatchRecords: 37, maxBatchBytes: 256 * 1024 });
    shipper.start();
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    // Writes keep arriving while shipping; every 50th is a "FLUSH" that must wait for the collector.
    for (let i = 1; i <= 600; i++) {
      const rec = await randomMutation(spool, SIZE, rnd);
      if (i % 50 === 0) await shipper.waitDurable(rec.seq, AbortSignal.timeout(20_000));
    }
    await shipper.drain(AbortSignal.timeout(30_000));
    const st = shipper.status();
    expect(st.ackedSeq).toBe(600n);
    expect(st.lagRecords).toBe(0n);
    expect(spool.ackedSeq).toBe(600n);
    await shipper.stop();

    const got: JournalRecord[] = [];
    for await (const r of readJournal(path.join(dir, 'volumes', 'vol-a', 'journal'))) got.push({ ...r, payload: Buffer.from(r.payload) });
    expect(got.length).toBe(spool.records.length);
    const mismatches = got.filter((r, i) => !same(r, spool.records[i]!)).map((r) => r.seq);
    expect(mismatches).toEqual([]);

    // And what a client restores through the service equals a replay of the spool.
    for (const seq of [150n, 433n]) expect((await restoreViaGrpc('vol-a', seq)).equals(replay(spool.records, SIZE, seq))).toBe(true);
    expect((await restoreViaGrpc('vol-a', 'now')).equals(replay(spool.records, SIZE, 600n))).toBe(true);
    expect(spool.records.some((r) => r.kind === RecordKind.Mark)).toBe(true);

    // The typed client: restore to a file, then revert that file in place to another
    // instant by writing only what changed between the two.
    const api = new CollectorApi({ address: server.address, allowPlaintext: true });
    try {
      const file = path.join(dir, 'restored.img');
      let progressCalls = 0;
      await api.restoreToFile('vol-a', TOKEN, { seq: 500n }, file, { onProgress: () => progressCalls++ });
      expect((await fsp.readFile(file)).equals(replay(spool.records, SIZE, 500n))).toBe(true);
      expect(progressCalls).toBeGreaterThan(0);
      const { bytes } = await api.restoreToFile('vol-a', TOKEN, { seq: 200n }, file, { changedSince: { seq: 500n } });
      expect((await fsp.readFile(file)).equals(replay(spool.records, SIZE, 200n))).toBe(true);
      expect(bytes).toBeLessThan(BigInt(SIZE));
      await expect(api.status('vol-a', 'bad-token')).rejects.toMatchObject({ code: 'REWIND_ERR_UNAUTHENTICATED' });
    } finally {
      api.close();
    }
  });

  it('ships from the real spool, with coalescing: every seq arrives, marks and the latest state restore exactly', async () => {
    const spool = await Spool.open(path.join(dir, 'spool-co'), { volumeSize: BigInt(SIZE), maxBytes: 64 * 1024 * 1024, fullPolicy: 'block' });
    const appended: JournalRecord[] = [];
    // Build a backlog first so shipping windows hold overwrites worth coalescing.
    const mem = new MemorySpool();
    let seed = 99;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    for (let i = 0; i < 400; i++) {
      const r = await randomMutation(mem, 256 * 1024, rnd); // small region: many overwrites
      const rec = r.kind === RecordKind.Mark ? await spool.mark(`mk${i}`) : await spool.append({ kind: r.kind, flags: r.flags, offset: r.offset, length: r.length, payload: r.payload });
      appended.push({ ...rec!, payload: Buffer.from(rec!.payload) });
    }
    const shipper = new Shipper({ spool, volume: 'vol-co', size: BigInt(SIZE), token: TOKEN, target: { address: server.address, allowPlaintext: true }, coalesce: true, maxBatchRecords: 200, maxBatchBytes: 8 * 1024 * 1024 });
    shipper.start();
    try {
      await shipper.drain(AbortSignal.timeout(30_000));
      expect(spool.ackedSeq).toBe(400n);
    } finally {
      await shipper.stop();
      await spool.close();
    }
    const got: JournalRecord[] = [];
    for await (const r of readJournal(path.join(dir, 'volumes', 'vol-co', 'journal'))) got.push(r);
    expect(got.map((r) => r.seq)).toEqual(appended.map((r) => r.seq));
    const placeholders = got.filter((r) => r.flags & RecordFlag.Coalesced).length;
    expect(placeholders).toBeGreaterThan(0);
    const marks = appended.filter((r) => r.kind === RecordKind.Mark).map((r) => r.seq);
    expect(marks.length).toBeGreaterThan(0);
    for (const seq of [...marks.slice(0, 3), 400n]) expect((await restoreViaGrpc('vol-co', seq)).equals(replay(appended, SIZE, seq))).toBe(true);
  });

  it('keeps to the bandwidth cap within tolerance', async () => {
    const spool = new MemorySpool();
    const cap = 1024 * 1024; // 1 MiB/s
    for (let i = 0; i < 48; i++) await spool.append({ kind: RecordKind.Write, flags: 0, offset: BigInt(i * 65536), length: 65536, payload: Buffer.alloc(65536, i) });
    const total = spool.records.reduce((a, r) => a + 48 + r.payload.length, 0); // ~3 MiB
    const shipper = new Shipper({ spool, volume: 'vol-bw', size: BigInt(SIZE), token: TOKEN, target: { address: server.address, allowPlaintext: true }, bandwidthBytesPerSec: cap, maxBatchBytes: 64 * 1024 });
    const t0 = performance.now();
    shipper.start();
    await shipper.drain(AbortSignal.timeout(30_000));
    const secs = (performance.now() - t0) / 1000;
    await shipper.stop();
    const burst = cap / 4;
    const expected = (total - burst) / cap;
    // Never faster than the cap allows; not much slower either (loopback is far faster).
    expect(secs).toBeGreaterThan(expected * 0.9);
    expect(secs).toBeLessThan(expected * 1.5 + 0.5);
  });

  it('reports a volume the shipper created in status and listing', async () => {
    await waitFor(() => store.volume('vol-a') !== undefined, 1_000, 'vol-a');
    const client = collectorClient({ address: server.address, allowPlaintext: true });
    try {
      const st = await new Promise<{ durable_seq: string; size: string; writer_connected: boolean }>((res, rej) =>
        (client.GetVolumeStatus as (r: unknown, cb: (e: unknown, v: never) => void) => void)({ volume: 'vol-a', token: TOKEN }, (e, v) => (e ? rej(e) : res(v))),
      );
      expect(st.durable_seq).toBe('600');
      expect(st.size).toBe(String(SIZE));
      expect(st.writer_connected).toBe(false);
    } finally {
      client.close();
    }
  });
});
