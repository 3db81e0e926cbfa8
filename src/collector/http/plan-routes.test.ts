import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordKind, type JournalRecord } from '../../journal/record.js';
import { CollectorStore } from '../store/collector-store.js';
import { startCollectorHttp, type CollectorHttp } from './server.js';

const S = 1_000_000_000n;
const T0 = 1_800_000_000n * S;
let dir: string;
let store: CollectorStore;
let http: CollectorHttp;
const seqs = new Map<string, bigint>();

function write(vol: string, off: number, len: number, at: bigint): JournalRecord {
  const seq = (seqs.get(vol) ?? 0n) + 1n;
  seqs.set(vol, seq);
  return { kind: RecordKind.Write, flags: 0, seq, time: at, offset: BigInt(off), length: len, payload: Buffer.alloc(len, 7) };
}
async function get(p: string): Promise<{ status: number; body: any }> {
  const r = await fetch(http.url + p);
  return { status: r.status, body: await r.json() };
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-plan-http-'));
  store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
  const a = await store.createVolume('a', 1n << 20n);
  // 0–10 s: 3 writes of one 4 KiB block; 10–20 s nothing; 20–30 s: 8 KiB new.
  await a.append([write('a', 0, 4096, T0 + S), write('a', 0, 4096, T0 + 2n * S), write('a', 0, 4096, T0 + 3n * S)]);
  await a.append([write('a', 4096, 8192, T0 + 25n * S)]);
  await a.addMark('m1', T0 + 5n * S);
  http = await startCollectorHttp({ store, listen: { host: '127.0.0.1', port: 0 } });
});
afterAll(async () => {
  await http?.close();
  await store?.close();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

describe('GET /v1/volumes/:v/activity', () => {
  it('gives the per-interval series over a window, intervals without writes as zeros', async () => {
    const r = await get(`/v1/volumes/a/activity?from=${T0}&to=${T0 + 29n * S}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      volume: 'a', intervalNs: '10000000000', from: String(T0), to: String(T0 + 30n * S),
      intervals: [
        { start: String(T0), end: String(T0 + 10n * S), writtenBytes: 12288, uniqueBytes: 4096, writeOps: 3 },
        { start: String(T0 + 10n * S), end: String(T0 + 20n * S), writtenBytes: 0, uniqueBytes: 0, writeOps: 0 },
        { start: String(T0 + 20n * S), end: String(T0 + 30n * S), writtenBytes: 8192, uniqueBytes: 8192, writeOps: 1 },
      ],
    });
  });

  it('takes a mark as a bound and rounds the window out to whole intervals', async () => {
    const r = await get(`/v1/volumes/a/activity?from=mark:m1&to=mark:m1`);
    expect(r.body.intervals.map((x: { writeOps: number }) => x.writeOps)).toEqual([3]);
  });

  it('refuses an unknown volume, a bad instant, an unknown mark and a reversed window with stable codes', async () => {
    expect(await get('/v1/volumes/nope/activity')).toMatchObject({ status: 404, body: { code: 'REWIND_ERR_NOT_FOUND' } });
    expect(await get('/v1/volumes/a/activity?from=yesterday')).toMatchObject({ status: 400, body: { code: 'REWIND_ERR_INVALID_ARGUMENT', details: { parameter: 'from' } } });
    expect(await get('/v1/volumes/a/activity?to=mark:nope')).toMatchObject({ status: 404, body: { code: 'REWIND_ERR_NOT_FOUND' } });
    expect(await get(`/v1/volumes/a/activity?from=${T0 + 20n * S}&to=${T0}`)).toMatchObject({ status: 400, body: { code: 'REWIND_ERR_INVALID_ARGUMENT' } });
  });
});

describe('GET /v1/volumes/:v/plan and /v1/plan', () => {
  const win = `from=${T0}&to=${T0 + 29n * S}`;

  it('plans one volume: bytes, rates, the bandwidth for an RPO with its lag curve, links, a given link and a resync', async () => {
    const r = await get(`/v1/volumes/a/plan?${win}&rpo=10s&link=1kB/s&bandwidth=8kbit&outage=10s`);
    expect(r.status).toBe(200);
    const p = r.body;
    expect(p).toMatchObject({ volume: 'a', basis: 'written', window: { intervals: 3, seconds: 30, intervalNs: '10000000000' } });
    expect(p.bytes).toEqual({ written: 20480, unique: 12288, uniqueByInterval: 12288, coalescingSavings: 8192, savingsRatio: 0.4, approximate: false });
    expect(p.rates.written).toEqual({ peak: 1228.8, p95: 1228.8, mean: 20480 / 30 });
    // 12288 B in 10 s against a 10 s target: 614.4 B/s; 1 kB/s links: 1.
    expect(p.rpo.recommendedBandwidth).toBeCloseTo(614.4, 6);
    expect(p.rpo.curve).toHaveLength(3);
    expect(p.rpo.curve[0]).toEqual({ t: String(T0 + 10n * S), queuedBytes: expect.any(Number), lagSeconds: expect.any(Number) });
    expect(p.links).toEqual({ linkBandwidth: 1000, count: 1 });
    // 8 kbit = 1000 B/s: 2288 B left after the first interval (2.288 s), none after.
    expect(p.bandwidth).toMatchObject({ bandwidth: 1000, achievedRpoSeconds: 2.288, keepsUp: true, finalQueuedBytes: 0 });
    // Worst 10 s outage: the last interval (8192 distinct bytes), drained past the series at
    // 1000 B/s against the mean 682.7 B/s; after the first one it takes 4.096 s, after the idle one 0.
    expect(p.resync).toMatchObject({ outageSeconds: 10, intervals: 1, bandwidth: 1000, worstStart: String(T0 + 20n * S), resyncBytes: 8192, backlogBytes: 8192 });
    expect(p.resync.seconds).toBeCloseTo(8192 / (1000 - 20480 / 30), 9);
  });

  it('plans a group: sums across volumes, and lists each volume', async () => {
    const b = await store.createVolume('b', 1n << 20n);
    await b.append([write('b', 0, 8192, T0 + 11n * S), write('b', 0, 8192, T0 + 12n * S)]);
    const r = await get(`/v1/plan?volumes=a,b&${win}&rpo=10s`);
    expect(r.status).toBe(200);
    expect(r.body.volumes).toEqual(['a', 'b']);
    expect(r.body.bytes).toMatchObject({ written: 20480 + 16384, unique: 12288 + 8192 });
    expect(r.body.perVolume.map((x: { volume: string; bytes: { written: number } }) => [x.volume, x.bytes.written])).toEqual([['a', 20480], ['b', 16384]]);
    expect(r.body.perVolume[0].rpo.curve).toBeUndefined();
  });

  it('refuses bad input with stable codes and a message that says what to give', async () => {
    const bad = async (q: string, code: string, status = 400) => {
      const r = await get(q);
      expect(r).toMatchObject({ status, body: { code } });
      return r.body.message as string;
    };
    expect(await bad('/v1/volumes/a/plan?rpo=0s', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/rpo must be more than 0/);
    expect(await bad('/v1/volumes/a/plan?rpo=soon', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/rpo: cannot read "soon" as a duration/);
    expect(await bad('/v1/volumes/a/plan?outage=-5m', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/outage/);
    expect(await bad('/v1/volumes/a/plan?bandwidth=fast', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/100Mbit/);
    expect(await bad('/v1/volumes/a/plan?link=0Mbit', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/more than 0/);
    expect(await bad('/v1/volumes/a/plan?basis=best', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/written/);
    expect(await bad('/v1/volumes/zz/plan?rpo=1m', 'REWIND_ERR_NOT_FOUND', 404)).toMatch(/no volume "zz"/);
    expect(await bad('/v1/plan?volumes=a,zz', 'REWIND_ERR_NOT_FOUND', 404)).toMatch(/no volume "zz"/);
    expect(await bad('/v1/plan', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/volumes is required/);
    expect(await bad('/v1/plan?volumes=a,b&from=mark:m1', 'REWIND_ERR_INVALID_ARGUMENT')).toMatch(/instants/);
  });
});
