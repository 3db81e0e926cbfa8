import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../core/errors.js';
import { HybridClock, ManualWallClock } from '../../core/hlc.js';
import { RecordKind, type JournalRecord } from '../../journal/record.js';
import { CollectorStore } from '../store/collector-store.js';
import type { VolumeStore } from '../store/volume-store.js';
import { startCollectorHttp, type CollectorHttp } from './server.js';

const SIZE = 256 * 1024;
const wall = new ManualWallClock(BigInt(Date.now()) * 1_000_000n);
const clock = new HybridClock(wall.read);
let seq = 0n;
function write(off: number, fill: number, len: number): JournalRecord {
  wall.advance(1_000_000_000n);
  return { kind: RecordKind.Write, flags: 0, seq: ++seq, time: clock.now(), offset: BigInt(off), length: len, payload: Buffer.alloc(len, fill) };
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let restoreDir: string;
let store: CollectorStore;
let vol: VolumeStore;
let http: CollectorHttp;
let bare: CollectorHttp;
let timeAfterFirst: bigint;

async function call(base: CollectorHttp, method: string, p: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(base.url + p, body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text, headers: r.headers };
}
const post = (p: string, body: unknown, base = http) => call(base, 'POST', p, body);
const get = (p: string, base = http) => call(base, 'GET', p);

async function finished(id: string): Promise<any> {
  for (let i = 0; i < 500; i++) {
    const j = await get(`/v1/restores/${id}`);
    if (j.body.state !== 'running') return j.body;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`restore job ${id} did not finish`);
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-restore-routes-'));
  restoreDir = path.join(dir, 'restores');
  store = await CollectorStore.open(path.join(dir, 'store'), { segmentBytes: 64 * 1024 });
  vol = await store.createVolume('pvc-a', BigInt(SIZE));
  await vol.append([write(0, 0xaa, 8192)]);
  timeAfterFirst = vol.window().latest;
  await vol.addMark('first');
  await vol.append([write(4096, 0xbb, 4096), write(100_000, 0xcc, 50_000)]);
  await vol.addMark('second');
  http = await startCollectorHttp({ store, listen: { host: '127.0.0.1', port: 0 }, restoreDir });
  bare = await startCollectorHttp({ store, listen: { host: '127.0.0.1', port: 0 } });
});

afterAll(async () => {
  await http?.close();
  await bare?.close();
  await store?.close();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

describe('restore jobs over HTTP', () => {
  it('writes the image of an instant to a file under --restore-dir, with progress and the sha256 of the image the API streams', async () => {
    const target = path.join(restoreDir, 'at-first.img');
    const r = await post('/v1/volumes/pvc-a/restores', { at: timeAfterFirst.toString(), path: target });
    expect(r.status).toBe(202);
    expect(r.headers.get('location')).toBe(`/v1/restores/${r.body.id}`);
    expect(r.body).toMatchObject({ volume: 'pvc-a', path: target, bytesTotal: String(SIZE), seq: '1' });
    expect(['running', 'done']).toContain(r.body.state);
    const done = await finished(r.body.id);
    expect(done).toMatchObject({ state: 'done', bytesDone: String(SIZE), bytesTotal: String(SIZE) });
    const file = await fsp.readFile(target);
    const streamed = Buffer.from(await (await fetch(`${http.url}/v1/volumes/pvc-a/image?at=${timeAfterFirst}`)).arrayBuffer());
    expect(sha(file)).toBe(sha(streamed));
    expect(done.sha256).toBe(sha(streamed));
    expect(file.subarray(0, 8192).every((b) => b === 0xaa)).toBe(true);
    await expect(fsp.stat(target + '.partial')).rejects.toThrow(/ENOENT/);
    const list = await get('/v1/restores');
    expect(list.body.restoreDir).toBe(restoreDir);
    expect(list.body.restores.map((j: { id: string }) => j.id)).toContain(r.body.id);
  });

  it('restores a mark given by name or as at=mark:NAME', async () => {
    const a = await post('/v1/volumes/pvc-a/restores', { mark: 'second', path: path.join(restoreDir, 'second.img') });
    expect(a.status).toBe(202);
    expect(a.body).toMatchObject({ mark: 'second', at: 'mark:second' });
    const b = await post('/v1/volumes/pvc-a/restores', { at: 'mark:first', path: path.join(restoreDir, 'first.img') });
    const [da, db] = [await finished(a.body.id), await finished(b.body.id)];
    expect(da.state).toBe('done');
    expect(db.state).toBe('done');
    expect(da.sha256).not.toBe(db.sha256);
    expect(sha(await fsp.readFile(path.join(restoreDir, 'second.img')))).toBe(da.sha256);
  });

  it('refuses a bad path with a stable code and a message naming the restore directory', async () => {
    await fsp.mkdir(restoreDir, { recursive: true });
    await fsp.symlink(dir, path.join(restoreDir, 'escape'));
    await fsp.writeFile(path.join(restoreDir, 'taken.img'), 'x');
    const cases: Array<[unknown, number, string, string]> = [
      ['relative.img', 400, ErrorCodes.INVALID_ARGUMENT, 'path-not-absolute'],
      [undefined, 400, ErrorCodes.INVALID_ARGUMENT, 'path-missing'],
      [42, 400, ErrorCodes.INVALID_ARGUMENT, 'path-missing'],
      [path.join(restoreDir, 'x.img.partial'), 400, ErrorCodes.INVALID_ARGUMENT, 'path-not-a-file-name'],
      [path.join(dir, 'outside.img'), 403, ErrorCodes.PERMISSION_DENIED, 'path-outside-restore-dir'],
      [`${restoreDir}/../outside.img`, 403, ErrorCodes.PERMISSION_DENIED, 'path-outside-restore-dir'],
      [restoreDir, 400, ErrorCodes.INVALID_ARGUMENT, 'path-not-a-file-name'],
      [path.join(restoreDir, 'escape', 'through-symlink.img'), 403, ErrorCodes.PERMISSION_DENIED, 'path-outside-restore-dir'],
      [path.join(restoreDir, 'no-such-dir', 'x.img'), 404, ErrorCodes.NOT_FOUND, 'parent-missing'],
      [path.join(restoreDir, 'taken.img'), 409, ErrorCodes.ALREADY_EXISTS, 'target-exists'],
      [path.join(restoreDir, 'escape'), 409, ErrorCodes.ALREADY_EXISTS, 'target-exists'],
    ];
    for (const [p, status, code, reason] of cases) {
      const r = await post('/v1/volumes/pvc-a/restores', { mark: 'first', path: p });
      expect({ p, status: r.status, code: r.body.code, reason: r.body.details?.reason }).toEqual({ p, status, code, reason });
      expect(r.body.message).toMatch(restoreDir);
    }
    await expect(fsp.stat(path.join(dir, 'outside.img'))).rejects.toThrow(/ENOENT/);
    await expect(fsp.stat(path.join(dir, 'through-symlink.img'))).rejects.toThrow(/ENOENT/);
    expect(await fsp.readFile(path.join(restoreDir, 'taken.img'), 'utf8')).toBe('x');
  });

  it('refuses restore jobs on a collector started without --restore-dir', async () => {
    const r = await post('/v1/volumes/pvc-a/restores', { mark: 'first', path: path.join(restoreDir, 'nope.img') }, bare);
    expect(r.status).toBe(501);
    expect(r.body.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(r.body.message).toMatch(/--restore-dir/);
    expect((await get('/v1/restores', bare)).body).toEqual({ restoreDir: null, restores: [] });
  });

  it('refuses an unknown mark, an instant before the window or in the future, and a bad point, each with its code', async () => {
    const p = path.join(restoreDir, 'never.img');
    const future = (BigInt(Date.now()) * 1_000_000n + 3_600_000_000_000n).toString();
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ mark: 'no-such-mark' }, 404, ErrorCodes.NOT_FOUND],
      [{ at: 'mark:no-such-mark' }, 404, ErrorCodes.NOT_FOUND],
      [{ at: '2001-01-01T00:00:00Z' }, 410, ErrorCodes.POINT_OUT_OF_WINDOW],
      [{ at: future }, 400, ErrorCodes.OUT_OF_RANGE],
      [{ at: 'seq:999' }, 400, ErrorCodes.OUT_OF_RANGE],
      [{ at: 'next tuesday' }, 400, ErrorCodes.INVALID_ARGUMENT],
      [{}, 400, ErrorCodes.INVALID_ARGUMENT],
      [{ at: 'mark:first', mark: 'first' }, 400, ErrorCodes.INVALID_ARGUMENT],
      [{ mark: '' }, 400, ErrorCodes.INVALID_ARGUMENT],
    ];
    for (const [b, status, code] of cases) {
      const r = await post('/v1/volumes/pvc-a/restores', { ...b, path: p });
      expect({ b, status: r.status, code: r.body.code }).toEqual({ b, status, code });
    }
    const noVol = await post('/v1/volumes/nope/restores', { mark: 'first', path: p });
    expect([noVol.status, noVol.body.code]).toEqual([404, ErrorCodes.NOT_FOUND]);
    const notJson = await call(http, 'POST', '/v1/volumes/pvc-a/restores', ['mark']);
    expect([notJson.status, notJson.body.code]).toEqual([400, ErrorCodes.INVALID_ARGUMENT]);
    const noJob = await get('/v1/restores/not-a-job');
    expect([noJob.status, noJob.body.code]).toEqual([404, ErrorCodes.NOT_FOUND]);
    await expect(fsp.stat(p)).rejects.toThrow(/ENOENT/);
  });

  it('diff between two marks answers with the changed extents; an unknown mark or an instant before the window is a 4xx with its code', async () => {
    const d = await get('/v1/volumes/pvc-a/diff?from=mark:first&to=mark:second');
    expect(d.status).toBe(200);
    expect(d.body.changedBytes).toBe(String(4096 + 50_000));
    const unknown = await get('/v1/volumes/pvc-a/diff?from=mark:first&to=mark:nope');
    expect([unknown.status, unknown.body.code]).toEqual([404, ErrorCodes.NOT_FOUND]);
    const early = await get('/v1/volumes/pvc-a/diff?from=2001-01-01T00:00:00Z&to=mark:second');
    expect([early.status, early.body.code]).toEqual([410, ErrorCodes.POINT_OUT_OF_WINDOW]);
  });

  it('cancels a running job (its partial file removed, no file made) while the collector keeps answering', async () => {
    // 1 GiB, nearly all hole: the job spends its time hashing zeros, which must not hold up requests.
    const big = await store.createVolume('pvc-big', 1n << 30n);
    await big.append([{ ...write(0, 0x11, 4096), seq: 1n }]);
    const target = path.join(restoreDir, 'cancelled.img');
    const r = await post('/v1/volumes/pvc-big/restores', { at: 'seq:1', path: target });
    expect(r.status).toBe(202);
    const t0 = Date.now();
    expect((await get('/healthz')).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(500);
    const running = await get(`/v1/restores/${r.body.id}`);
    expect(running.body.state).toBe('running');
    const c = await call(http, 'DELETE', `/v1/restores/${r.body.id}`);
    expect(c.status).toBe(200);
    expect(c.body).toMatchObject({ state: 'cancelled', error: { code: ErrorCodes.CLOSED } });
    expect(BigInt(c.body.bytesDone)).toBeLessThan(1n << 30n);
    await expect(fsp.stat(target)).rejects.toThrow(/ENOENT/);
    await expect(fsp.stat(target + '.partial')).rejects.toThrow(/ENOENT/);
  });

  it('cancelling a finished job leaves it as it was', async () => {
    const r = await post('/v1/volumes/pvc-a/restores', { mark: 'first', path: path.join(restoreDir, 'cancel-late.img') });
    const done = await finished(r.body.id);
    const c = await call(http, 'DELETE', `/v1/restores/${r.body.id}`);
    expect(c.status).toBe(200);
    expect(c.body).toEqual(done);
  });
});

describe('timeline page', () => {
  it('serves the page, its script and uPlot from this collector under a same-origin CSP; / leads to it', async () => {
    const page = await get('/ui/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    expect(page.body).toMatch(/<script src="vendor\/uPlot\.iife\.min\.js">/);
    expect(page.body).not.toMatch(/https?:\/\//);
    for (const asset of ['/ui/timeline.js', '/ui/timeline.css', '/ui/vendor/uPlot.iife.min.js', '/ui/vendor/uPlot.min.css']) {
      const a = await get(asset);
      expect([asset, a.status]).toEqual([asset, 200]);
    }
    const root = await fetch(http.url + '/', { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ui/');
    expect((await get('/ui/../package.json')).status).toBe(404);
  });
});
