import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CollectorStore } from '../../src/collector/store/index.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { RECORD_HEADER_SIZE } from '../../src/journal/record.js';
import { SEGMENT_HEADER_SIZE, listSegments } from '../../src/journal/segment.js';
import { byteDiff, restoreToBuffer, Rng, VolumeModel } from './collector-store-model.js';

const SIZE = 1024 * 1024 + 512;
const dirs: string[] = [];
const children: number[] = [];
async function tmp(): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-cstore-faults-'));
  dirs.push(d);
  return d;
}

afterAll(async () => {
  for (const pid of children) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
});

describe('collector store: faults', () => {
  it('scrub finds a flipped byte and names the volume, segment and record offset', async () => {
    const dir = await tmp();
    const store = await CollectorStore.open(dir, { segmentBytes: 128 * 1024 });
    const vol = await store.createVolume('scrubbed', BigInt(SIZE));
    const model = new VolumeModel(SIZE, new Rng(5));
    await model.drive(vol, 120, 20);
    expect(await vol.scrub()).toEqual({ ok: true, problems: [] });
    const segs = await listSegments(path.join(dir, 'volumes', 'scrubbed', 'journal'));
    expect(segs.length).toBeGreaterThan(2);
    const victim = segs[1]!;
    // Flip a payload byte of the first record of the second segment.
    const fh = await fsp.open(victim.path, 'r+');
    const b = Buffer.alloc(1);
    const at = SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE + 3;
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0x40;
    await fh.write(b, 0, 1, at);
    await fh.close();
    const r = await vol.scrub();
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([expect.objectContaining({ volume: 'scrubbed', segment: victim.name, offset: SEGMENT_HEADER_SIZE, reason: expect.stringContaining('crc') })]);
    await store.close();
  });

  it('scrub reports durable records zeroed at the end of the segment being written, and not the padding after them', async () => {
    const dir = await tmp();
    const store = await CollectorStore.open(dir, { segmentBytes: 1024 * 1024 });
    const vol = await store.createVolume('zeroed', BigInt(SIZE));
    await new VolumeModel(SIZE, new Rng(7)).drive(vol, 30, 10);
    // Live: the tail ends in the zero padding of a direct write, which is not damage.
    expect(await vol.scrub()).toEqual({ ok: true, problems: [] });
    const segs = await listSegments(path.join(dir, 'volumes', 'zeroed', 'journal'));
    const last = segs[segs.length - 1]!;
    // Zero the last 8 KiB of records, which the collector acknowledged as durable.
    const fh = await fsp.open(last.path, 'r+');
    const { size } = await fh.stat();
    const end = size - (size % 4096);
    await fh.write(Buffer.alloc(8192), 0, 8192, end - 8192);
    await fh.close();
    const r = await vol.scrub();
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toEqual(expect.objectContaining({ volume: 'zeroed', segment: last.name }));
    await store.close().catch(() => undefined);
  });

  it('reopens after the tail segment is truncated mid-record: durableSeq is the last whole record and appends continue', async () => {
    const dir = await tmp();
    let store = await CollectorStore.open(dir, { segmentBytes: 128 * 1024 });
    let vol = await store.createVolume('torn', BigInt(SIZE));
    const model = new VolumeModel(SIZE, new Rng(9), 'seeded');
    await model.drive(vol, 80, 10);
    await store.close();
    const segs = await listSegments(path.join(dir, 'volumes', 'torn', 'journal'));
    const last = segs[segs.length - 1]!;
    await fsp.truncate(last.path, last.size - 7);
    store = await CollectorStore.open(dir, { segmentBytes: 128 * 1024 });
    vol = store.volume('torn')!;
    const lost = model.snapshots[model.snapshots.length - 1]!.seq - vol.durableSeq;
    expect(lost).toBe(1n);
    const prev = model.snapshots.filter((s) => s.seq <= vol.durableSeq).pop()!;
    expect(byteDiff(await restoreToBuffer(vol, { seq: prev.seq }), prev.image)).toEqual([]);
    // The shipper resends from durableSeq+1: the model rebuilds that state and goes on.
    const replay = new VolumeModel(SIZE, new Rng(9), 'seeded');
    while (replay.seq < vol.durableSeq) replay.nextRecord();
    await replay.drive(vol, 30, 10);
    expect(vol.durableSeq).toBe(replay.seq);
    expect(byteDiff(await restoreToBuffer(vol, { seq: replay.seq }), replay.image)).toEqual([]);
    await store.close();
  });

  it('after kill -9 during sustained appends, every acknowledged seq is restorable', async () => {
    const dir = await tmp();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'collector-store-crash-child.ts'), dir, String(SIZE), '77'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child.pid!);
    let acked = 0n;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child made no progress: ${stderr}`)), 60_000);
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        for (const m of buf.matchAll(/acked (\d+)\n/g)) acked = BigInt(m[1]!);
        buf = buf.slice(buf.lastIndexOf('\n') + 1);
        if (acked >= 300n) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', (code) => { if (acked < 300n) reject(new Error(`child exited ${code}: ${stderr}`)); });
    });
    await new Promise((r) => child.once('exit', r).once('close', r));
    const store = await CollectorStore.open(dir, { segmentBytes: 512 * 1024 });
    const vol = store.volume('crashy')!;
    expect(vol.durableSeq).toBeGreaterThanOrEqual(acked);
    const model = new VolumeModel(SIZE, new Rng(77), 'seeded');
    while (model.seq < acked) model.nextRecord(32 * 1024);
    expect(byteDiff(await restoreToBuffer(vol, { seq: acked }), model.image)).toEqual([]);
    while (model.seq < vol.durableSeq) model.nextRecord(32 * 1024);
    expect(byteDiff(await restoreToBuffer(vol, { seq: vol.durableSeq }), model.image)).toEqual([]);
    expect((await vol.scrub()).ok).toBe(true);
    await store.close();
  });

  it('retention keeps the window and retained marks exact, drops expired marks, and names the window outside it', async () => {
    const dir = await tmp();
    const retention = { pointInTimeNs: 200_000_000n, marksNs: 400_000_000n };
    const store = await CollectorStore.open(dir, { segmentBytes: 64 * 1024, retention });
    const vol = await store.createVolume('kept', BigInt(SIZE));
    const model = new VolumeModel(SIZE, new Rng(11));
    await model.drive(vol, 300, 15); // ~600 ms of fake time
    const snaps = model.snapshots;
    const old = snaps[1]!;      // far outside everything
    const marked = snaps[6]!;   // outside the PIT window, inside the marks window
    await vol.addMark('expired', old.time);
    await vol.addMark('kept', marked.time);
    const now = model.clock.peek();
    const r = await vol.applyRetention(now);
    expect(vol.marks().map((m) => m.name)).toEqual(['kept']);
    // Consolidation stopped at the oldest retained mark, not at the PIT cutoff.
    expect(r.checkpointSeq).toBe(marked.seq);
    expect(r.freedBytes).toBeGreaterThan(0);
    expect(byteDiff(await restoreToBuffer(vol, { mark: 'kept' }), marked.image)).toEqual([]);
    for (const s of snaps.filter((x) => x.time >= now - retention.pointInTimeNs)) {
      expect(byteDiff(await restoreToBuffer(vol, { time: s.time }), s.image)).toEqual([]);
    }
    const err = await restoreToBuffer(vol, { time: old.time }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCodes.POINT_OUT_OF_WINDOW, message: expect.stringMatching(/restorable window \[.*Z \(seq \d+\), .*Z \(seq \d+\)\]/) });
    // Once the mark expires too, the checkpoint moves up to the PIT cutoff.
    const later = now + 300_000_000n;
    const r2 = await vol.applyRetention(later);
    expect(vol.marks()).toEqual([]);
    expect(r2.checkpointSeq).toBe(model.seq);
    expect(byteDiff(await restoreToBuffer(vol, { time: later }), model.image)).toEqual([]);
    await store.close();
  });

  it('consolidation runs while appends continue, and both end exact', async () => {
    const dir = await tmp();
    const store = await CollectorStore.open(dir, { segmentBytes: 64 * 1024 });
    const vol = await store.createVolume('busy', BigInt(SIZE));
    const model = new VolumeModel(SIZE, new Rng(21));
    await model.drive(vol, 150, 25);
    const cut = model.snapshots[3]!;
    const appending = model.drive(vol, 150, 25);
    const consolidated = vol.consolidate({ seq: cut.seq });
    const [r] = await Promise.all([consolidated, appending]);
    expect(r.checkpointSeq).toBe(cut.seq);
    expect(vol.durableSeq).toBe(model.seq);
    for (const s of model.snapshots.filter((x) => x.seq >= cut.seq)) {
      expect(byteDiff(await restoreToBuffer(vol, { seq: s.seq }), s.image)).toEqual([]);
    }
    expect((await vol.scrub()).ok).toBe(true);
    await store.close();
  });
});
