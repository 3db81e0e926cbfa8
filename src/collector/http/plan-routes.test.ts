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
