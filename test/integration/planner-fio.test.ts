import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxLag, requiredBandwidthExact, type Slot } from '../../src/collector/planner/queue.js';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import { requirePeer, runPeer } from '../helpers/nbd-peers.js';
import { runRewind, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

const SIZE = 32 * 1024 * 1024;
const ADMIN = 'planner-fio-admin-token-0123456789';
const TOKEN = 'planner-fio-volume-token-abcdefgh';
const RPO_S = 2;

interface Activity { intervalNs: string; intervals: Array<{ start: string; end: string; writtenBytes: number; uniqueBytes: number; writeOps: number }> }
interface PlanJson { bytes: { written: number; unique: number }; rpo: { recommendedBandwidth: number; maxLagSeconds: number }; bandwidth?: { achievedRpoSeconds: number } }

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  const body = (await r.json()) as T;
  if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

/** fio through the NBD export, with its own overwrites (norandommap over a small region). */
async function fio(uri: string, args: string[]): Promise<number> {
  const r = await runPeer('fio', ['--name=plan', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--norandommap', '--randrepeat=0', '--output-format=json', ...args], { timeoutMs: 60_000 });
  const job = (JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: Array<{ error: number; write: { io_bytes: number } }> }).jobs[0]!;
  expect(job.error).toBe(0);
  return job.write.io_bytes;
}

describe('planner on a recorded real workload: fio through the NBD export, shipped to a collector', () => {
  let dir: string;
  let collector: RewindProcess;
  let serve: RewindProcess | undefined;
  let api: CollectorApi;
  let fioBytes = 0;

  beforeAll(async () => {
    requirePeer('fio');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-planner-fio-'));
    await fs.writeFile(path.join(dir, 'admin'), ADMIN + '\n', { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'token'), TOKEN + '\n', { mode: 0o600 });
    // One-second intervals, so a few seconds of fio make a series with a shape.
    collector = await startRewind(['collector', '--data', path.join(dir, 'collector'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'admin'), '--allow-plaintext', '--plan-interval', '1s']);
    api = new CollectorApi({ address: collector.info.grpc!, allowPlaintext: true });
    await api.registerVolume(ADMIN, 'data', BigInt(SIZE), TOKEN);
    serve = await startRewind([
      'serve', '--backing', path.join(dir, 'data.img'), '--size', String(SIZE), '--spool', path.join(dir, 'spool'), '--listen', `unix:${path.join(dir, 'nbd.sock')}`,
      '--collector', collector.info.grpc!, '--volume', 'data', '--token-file', path.join(dir, 'token'), '--collector-plaintext',
    ]);
    const uri = serve.info.nbd!;
    // A burst (4 KiB random writes over 4 MiB, so blocks are written many times), a quiet
    // second, then a lighter, rate-limited phase with larger writes over another region.
    fioBytes += await fio(uri, ['--bs=4k', '--iodepth=8', '--size=4M', '--time_based', '--runtime=2']);
    await new Promise((r) => setTimeout(r, 1200));
    fioBytes += await fio(uri, ['--bs=64k', '--iodepth=2', '--offset=8M', '--size=8M', '--time_based', '--runtime=1', '--rate=4m']);
    // Every write is at the collector once its activity adds up to what fio wrote (fio's
    // FLUSH at the end completes only then under flush-sync; this also covers the initial copy).
    const deadline = Date.now() + 30_000;
    for (;;) {
      const a = await getJson<Activity>(`${collector.info.http}/v1/volumes/data/activity`);
      if (a.intervals.reduce((s, x) => s + x.writtenBytes, 0) >= fioBytes) break;
      if (Date.now() > deadline) throw new Error(`the collector holds ${a.intervals.reduce((s, x) => s + x.writtenBytes, 0)} of the ${fioBytes} bytes fio wrote after 30 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  afterAll(async () => {
    if (serve) expect(await serve.stop()).toBe(0);
    api?.close();
    await collector?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('records every interval with unique ≤ written, and the burst overwrote blocks', async () => {
    const a = await getJson<Activity>(`${collector.info.http}/v1/volumes/data/activity`);
    expect(a.intervalNs).toBe('1000000000');
    const busy = a.intervals.filter((x) => x.writeOps > 0);
    expect(busy.length).toBeGreaterThanOrEqual(3);
    for (const x of a.intervals) expect(x.uniqueBytes).toBeLessThanOrEqual(x.writtenBytes);
    expect(a.intervals.reduce((s, x) => s + x.writtenBytes, 0)).toBeGreaterThanOrEqual(fioBytes);
    // 4 KiB random writes over 4 MiB for 2 s: far more than 1024 writes, so blocks repeat.
    expect(busy.some((x) => x.uniqueBytes < x.writtenBytes)).toBe(true);
  });

  it('rewind plan recommends a bandwidth under which the lag stays within the RPO, and just below which it does not', async () => {
    const r = await runRewind(['plan', 'data', '--collector', collector.info.http!, '--rpo', `${RPO_S}s`, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout) as PlanJson;
    expect(p.bytes.unique).toBeLessThanOrEqual(p.bytes.written);
    expect(p.bytes.unique).toBeLessThan(p.bytes.written);
    const b = p.rpo.recommendedBandwidth;
    expect(b).toBeGreaterThan(0);
    expect(p.rpo.maxLagSeconds).toBeLessThanOrEqual(RPO_S);

    // The collector's simulation at that link and 2 % under it.
    const at = async (bw: number) => (await getJson<PlanJson>(`${collector.info.http}/v1/volumes/data/plan?bandwidth=${bw}`)).bandwidth!.achievedRpoSeconds;
    expect(await at(b)).toBeLessThanOrEqual(RPO_S);
    expect(await at(b * 0.98)).toBeGreaterThan(RPO_S);

    // And an independent replay of the recorded series agrees (closed form, and the queue here).
    const a = await getJson<Activity>(`${collector.info.http}/v1/volumes/data/activity`);
    const slots: Slot[] = a.intervals.map((x) => ({ seconds: 1, bytes: x.writtenBytes }));
    expect(b).toBeCloseTo(requiredBandwidthExact(slots, RPO_S), 0);
    expect(Math.abs(b - requiredBandwidthExact(slots, RPO_S)) / b).toBeLessThan(1e-9);
    expect(maxLag(slots, b)).toBeLessThanOrEqual(RPO_S);
    expect(maxLag(slots, b * 0.98)).toBeGreaterThan(RPO_S);

    // The table form says the same.
    const table = await runRewind(['plan', 'data', '--collector', collector.info.http!, '--rpo', `${RPO_S}s`, '--link', '100Mbit', '--outage', '5s']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^bandwidth for RPO 2 s +\S+/m);
    expect(table.stdout).toMatch(/^resync after 5 s +/m);
  });
});
