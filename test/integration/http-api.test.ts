import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectorStore, type VolumeStore } from '../../src/collector/store/index.js';
import { readFrames, startCollectorHttp, type CollectorHttp } from '../../src/collector/http/index.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { createRewindMetrics } from '../../src/metrics/index.js';
import { byteDiff, Rng, VolumeModel } from './collector-store-model.js';

const SIZE = 1024 * 1024 + 3000; // not block aligned on purpose
let dir: string;
let store: CollectorStore;
let vol: VolumeStore;
let volB: VolumeStore;
let http: CollectorHttp;
let ready = false;
const model = new VolumeModel(SIZE, new Rng(3004));
const modelB = new VolumeModel(64 * 1024, new Rng(77));

async function get(p: string): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(http.url + p);
  const text = await r.text();
  return { status: r.status, body: text && r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text, headers: r.headers };
}
async function post(p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(http.url + p, body === undefined ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}
async function image(q: string): Promise<{ status: number; buf: Buffer; type: string | null }> {
  const r = await fetch(`${http.url}/v1/volumes/pvc-a/image?${q}`);
  return { status: r.status, buf: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type') };
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-http-'));
  store = await CollectorStore.open(dir, { segmentBytes: 128 * 1024 });
  vol = await store.createVolume('pvc-a', BigInt(SIZE));
  volB = await store.createVolume('pvc-b', BigInt(modelB.size));
  await model.drive(vol, 240, 20);
  // The node hook spools a mark record; the collector learns it a little later, as over the stream.
  const localNodes = new Map([['pvc-b', {
    mark: async (name: string) => {
      const rec = modelB.markRecord(name);
      setTimeout(() => void volB.append([rec]), 100);
      return { seq: rec.seq, time: rec.time };
    },
  }]]);
  http = await startCollectorHttp({ store, listen: { host: '127.0.0.1', port: 0 }, metrics: createRewindMetrics(), localNodes, ready: () => ready });
});

afterAll(async () => {
  await http?.close();
  await store?.close();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

describe('collector HTTP API', () => {
  it('lists volumes and shows one with its window and marks, bigints as decimal strings', async () => {
    const list = await get('/v1/volumes');
    expect(list.status).toBe(200);
    expect(list.body.volumes.map((v: { name: string }) => v.name).sort()).toEqual(['pvc-a', 'pvc-b']);
    const one = await get('/v1/volumes/pvc-a');
    expect(one.status).toBe(200);
    expect(one.body.durableSeq).toBe(model.seq.toString());
    expect(one.body.size).toBe(String(SIZE));
    expect(one.body.window.latestSeq).toBe(model.seq.toString());
    expect(one.body.marks).toEqual([]);
  });

  it('creates marks at an instant or now, refuses a reused name with 409, and lists them', async () => {
    const s = model.snapshots[3]!;
    const m = await post('/v1/volumes/pvc-a/marks', { name: 'before-upgrade', at: s.time.toString() });
    expect(m.status).toBe(201);
    expect(m.body).toMatchObject({ name: 'before-upgrade', seq: s.seq.toString() });
    const now = await post('/v1/volumes/pvc-a/marks', { name: 'latest' });
    expect(now.status).toBe(201);
    expect(now.body.seq).toBe(model.seq.toString());
    const dup = await post('/v1/volumes/pvc-a/marks', { name: 'before-upgrade', at: model.snapshots[6]!.time.toString() });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe(ErrorCodes.ALREADY_EXISTS);
    const list = await get('/v1/volumes/pvc-a/marks');
    expect(list.body.marks.map((x: { name: string }) => x.name)).toEqual(['before-upgrade', 'latest']);
  });

  it('puts a mark through the local node so it is ordered with the writes, and waits for the collector', async () => {
    const before = volB.durableSeq;
    const m = await post('/v1/volumes/pvc-b/marks', { name: 'app-consistent' });
    expect(m.status).toBe(201);
    expect(BigInt(m.body.seq)).toBe(before + 1n);
    expect(volB.marks().map((x) => x.name)).toEqual(['app-consistent']);
  });

  it('streams the image as of an instant or a mark, equal to the model', async () => {
    const s = model.snapshots[5]!;
    const img = await image(`at=${s.time}`);
    expect(img.status).toBe(200);
    expect(img.type).toBe('application/octet-stream');
    expect(img.buf.length).toBe(SIZE);
    expect(byteDiff(img.buf, s.image)).toEqual([]);
    const byMark = await image('at=mark:before-upgrade');
    expect(byteDiff(byMark.buf, model.snapshots[3]!.image)).toEqual([]);
    const bySeq = await image(`at=seq:${model.snapshots[8]!.seq}`);
    expect(byteDiff(bySeq.buf, model.snapshots[8]!.image)).toEqual([]);
  });

  it('diff equals a byte comparison of two image downloads', async () => {
    for (const [i, j] of [[1, 2], [2, 9], [9, 4]] as const) {
      const a = model.snapshots[i]!;
      const b = model.snapshots[j]!;
      const d = await get(`/v1/volumes/pvc-a/diff?from=${a.time}&to=seq:${b.seq}`);
      expect(d.status).toBe(200);
      const ia = (await image(`at=${a.time}`)).buf;
      const ib = (await image(`at=${b.time}`)).buf;
      const truth = byteDiff(ia, ib);
      expect(truth.length).toBeGreaterThan(0);
      const mask = Buffer.alloc(SIZE);
      let sum = 0n;
      for (const e of d.body.extents as Array<{ offset: string; length: string; kind: string }>) {
        mask.fill(1, Number(e.offset), Number(e.offset) + Number(e.length));
        sum += BigInt(e.length);
        expect(['data', 'zero']).toContain(e.kind);
      }
      expect(d.body.changedBytes).toBe(sum.toString());
      expect(truth.filter(([s, end]) => mask.subarray(s, end).includes(0))).toEqual([]);
      // Nothing unchanged is reported, at the documented 512-byte granularity.
      const differs = Buffer.alloc(SIZE);
      for (const [s, end] of truth) differs.fill(1, s, end);
      for (const e of d.body.extents as Array<{ offset: string; length: string }>) {
        const off = Number(e.offset);
        const end = off + Number(e.length);
        for (let p = off; p < end; p = (Math.floor(p / 512) + 1) * 512) {
          expect(differs.subarray(p, Math.min(end, (Math.floor(p / 512) + 1) * 512)).includes(1)).toBe(true);
        }
      }
    }
  });

  it('streams only changed blocks in the documented framed format; applied to the older image it gives the younger', async () => {
    const older = model.snapshots[2]!;
    const younger = model.snapshots[10]!;
    const r = await image(`at=${younger.time}&changedSince=${older.time}`);
    expect(r.status).toBe(200);
    expect(r.type).toContain('application/vnd.rewind.extents.v1');
    const img = Buffer.from(older.image);
    let frames = 0;
    const it = readFrames(r.buf);
    let n = it.next();
    while (!n.done) {
      const f = n.value;
      if (f.kind === 'data') f.data!.copy(img, Number(f.offset));
      else img.fill(0, Number(f.offset), Number(f.offset) + f.length);
      frames++;
      n = it.next();
    }
    expect(n.value.size).toBe(BigInt(SIZE));
    expect(frames).toBeGreaterThan(0);
    expect(byteDiff(img, younger.image)).toEqual([]);
  });

  it('returns errors as {code, message, details} with the status of their code', async () => {
    const noVol = await get('/v1/volumes/nope');
    expect(noVol.status).toBe(404);
    expect(noVol.body).toMatchObject({ code: ErrorCodes.NOT_FOUND, details: { volume: 'nope' } });
    expect(typeof noVol.body.message).toBe('string');
    const badPoint = await get('/v1/volumes/pvc-a/diff?from=yesterday-ish&to=now');
    expect(badPoint.status).toBe(400);
    expect(badPoint.body.code).toBe(ErrorCodes.INVALID_ARGUMENT);
    const missing = await get('/v1/volumes/pvc-a/diff?to=now');
    expect(missing.status).toBe(400);
    expect(missing.body.details).toEqual({ parameter: 'from' });
    const noMark = await get('/v1/volumes/pvc-a/image?at=mark:never');
    expect(noMark.status).toBe(404);
    expect(noMark.body.code).toBe(ErrorCodes.NOT_FOUND);
    const noName = await post('/v1/volumes/pvc-a/marks', { at: 'now' });
    expect(noName.status).toBe(400);
    const noRoute = await get('/v2/whatever');
    expect(noRoute.status).toBe(404);
    expect(noRoute.body.code).toBe(ErrorCodes.NOT_FOUND);
  });

  it('exposes the metrics with the volume label, counting appends made through the store', async () => {
    const before = await get('/metrics');
    expect(before.status).toBe(200);
    expect(before.headers.get('content-type')).toContain('text/plain');
    for (const name of ['rewind_durable_seq{volume="pvc-a"}', 'rewind_journal_bytes{volume="pvc-a"}', 'rewind_checkpoint_bytes{volume="pvc-a"}',
      'rewind_lag_seconds{volume="pvc-a",side="collector"}', 'rewind_latest_durable_time_seconds{volume="pvc-a"}',
      'rewind_restore_duration_seconds_count{volume="pvc-a",kind="image"}', 'rewind_restore_bytes_total{volume="pvc-a"}',
      'rewind_diff_duration_seconds_count{volume="pvc-a"}']) {
      expect(before.body).toContain(name);
    }
    expect(before.body).toContain(`rewind_durable_seq{volume="pvc-a"} ${model.seq}`);
    const recs = [model.nextRecord(), model.nextRecord(), model.nextRecord()];
    await vol.append(recs);
    const bytes = recs.reduce((a, r) => a + r.payload.length, 0);
    const after = (await get('/metrics')).body as string;
    expect(after).toContain('rewind_entries_appended_total{volume="pvc-a"} 3');
    expect(after).toContain(`rewind_bytes_appended_total{volume="pvc-a"} ${bytes}`);
    expect(after).toContain(`rewind_durable_seq{volume="pvc-a"} ${model.seq}`);
    model.snapshot();

    // A restore is counted, with its bytes and a duration.
    const metric = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}"=,]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1]);
    const count = 'rewind_restore_duration_seconds_count{volume="pvc-a",kind="image"}';
    const sum = 'rewind_restore_duration_seconds_sum{volume="pvc-a",kind="image"}';
    const restored = 'rewind_restore_bytes_total{volume="pvc-a"}';
    for (const n of [count, sum, restored]) expect(Number.isFinite(metric(after, n)), n).toBe(true);
    const image = await fetch(`${http.url}/v1/volumes/pvc-a/image?at=now`);
    expect(image.status).toBe(200);
    const size = (await image.arrayBuffer()).byteLength;
    const later = (await get('/metrics')).body as string;
    expect(metric(later, count)).toBe(metric(after, count) + 1);
    expect(metric(later, restored)).toBe(metric(after, restored) + size);
    expect(metric(later, sum)).toBeGreaterThan(metric(after, sum));
  });

  it('answers /healthz always and /readyz from the readiness callback', async () => {
    expect((await get('/healthz')).status).toBe(200);
    const notReady = await get('/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body.code).toBe(ErrorCodes.UNAVAILABLE);
    ready = true;
    expect((await get('/readyz')).status).toBe(200);
  });

  it('scrubs clean, consolidates, and then answers 410 for points before the window', async () => {
    const scrub = await post('/v1/volumes/pvc-a/scrub');
    expect(scrub.status).toBe(200);
    expect(scrub.body).toMatchObject({ volume: 'pvc-a', ok: true, problems: [] });
    const cut = model.snapshots[6]!;
    const c = await post('/v1/volumes/pvc-a/consolidate', { upTo: `seq:${cut.seq}` });
    expect(c.status).toBe(200);
    expect(c.body.checkpointSeq).toBe(cut.seq.toString());
    const gone = await image(`at=${model.snapshots[1]!.time}`);
    expect(gone.status).toBe(410);
    expect(JSON.parse(gone.buf.toString()).code).toBe(ErrorCodes.POINT_OUT_OF_WINDOW);
    const still = await image(`at=${model.snapshots[7]!.time}`);
    expect(byteDiff(still.buf, model.snapshots[7]!.image)).toEqual([]);
    const badBody = await post('/v1/volumes/pvc-a/consolidate', {});
    expect(badBody.status).toBe(400);
  });
});
