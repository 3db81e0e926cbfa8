import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCollectorGrpc, type CollectorGrpcServer } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/index.js';
import { writeHistory } from '../../src/controller/history-writer.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { HybridClock } from '../../src/core/hlc.js';
import { CollectorApi, type RestoreChunkView } from '../../src/rpc/collector-api.js';
import type { CollectorTarget } from '../../src/rpc/transport.js';
import { openNodeVolume, type NodeVolume } from '../../src/ship/node-volume.js';
import { waitFor } from '../helpers/stream-fixtures.js';

/**
 * A node asks the collector what a volume holds before serving it (src/ship/catch-up.ts):
 * a VolumeRestore's new volume is filled before its first use, an in-place revert made
 * while the volume was detached is pulled in rather than overwritten, a node whose clock
 * is behind still ships, and the node's own report reaches the volume status.
 */
const MiB = 1024 * 1024;
const SIZE = 4 * MiB;
const TOKEN = 'catch-up-token-0123456789';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const nowNs = () => BigInt(Date.now()) * 1_000_000n;

/** Chunks of an image, as the Restore stream gives them, for writeHistory. */
async function* chunksOf(img: Buffer, changedOnly?: Buffer): AsyncGenerator<RestoreChunkView> {
  const step = 256 * 1024;
  for (let off = 0; off < img.length; off += step) {
    const part = img.subarray(off, off + step);
    if (changedOnly && part.equals(changedOnly.subarray(off, off + step))) continue;
    yield { offset: BigInt(off), data: Buffer.from(part), zeroLength: 0n, doneBytes: BigInt(off + part.length), volumeSize: BigInt(img.length) };
  }
}

async function deviceOf(vol: NodeVolume): Promise<Buffer> {
  const b = Buffer.alloc(Number(vol.size));
  await vol.backend.pread(b, 0n);
  return b;
}

describe('node catch-up from the collector before serving', () => {
  let dir: string;
  let store: CollectorStore;
  let server: CollectorGrpcServer;
  let target: CollectorTarget;
  let api: CollectorApi;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-catch-up-'));
    store = await CollectorStore.open(path.join(dir, 'collector'));
    server = await startCollectorGrpc({ store: storePort(store), listen: { path: path.join(dir, 'c.sock') }, allowPlaintext: true });
    target = { address: server.address, allowPlaintext: true };
    api = new CollectorApi(target);
  });
  afterAll(async () => {
    api?.close();
    await server?.close();
    await store?.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const open = (name: string, sub: string, extra: Partial<Parameters<typeof openNodeVolume>[0]> = {}) =>
    openNodeVolume({
      name,
      backingPath: path.join(dir, sub, 'vol.img'),
      size: BigInt(SIZE),
      spoolDir: path.join(dir, sub, 'spool'),
      spoolMaxBytes: 64 * MiB,
      fullPolicy: 'block',
      mode: 'flush-sync',
      collector: { target, token: TOKEN },
      connectTimeoutMs: 5_000,
      ...extra,
    });

  it('fills a new, empty device of a restored volume from the collector before its first use, then ships on after it', async () => {
    await store.createVolume('restored', BigInt(SIZE), { token: TOKEN });
    const img = randomBytes(SIZE);
    const w = await writeHistory(target, 'restored', TOKEN, BigInt(SIZE), chunksOf(img), { minTimeNs: 0n, nowNs });
    await fsp.mkdir(path.join(dir, 'a'), { recursive: true });
    const vol = await open('restored', 'a');
    try {
      // Before any NBD client could read it, the device is the restored image.
      expect(sha(await deviceOf(vol))).toBe(sha(img));
      expect(vol.spool.ackedSeq).toBe(w.lastSeq);
      await vol.resynced;
      const more = randomBytes(4096);
      await vol.backend.pwrite(more, 8192n, { fua: false });
      await vol.backend.flush();
      more.copy(img, 8192);
      // Numbering went on after the restore: no full resync of the device.
      expect(vol.spool.lastSeq).toBe(w.lastSeq + 1n);
      const out = path.join(dir, 'a-restored.img');
      await api.restoreToFile('restored', TOKEN, { now: true }, out);
      expect(sha(await fsp.readFile(out))).toBe(sha(img));
      // The node's report: its mode in force and its newest entry.
      const st = await api.status('restored', TOKEN);
      const writer = st.detail.writer as { role: string; durability: string; latestSeq?: string };
      expect(writer.role).toBe('node');
      expect(writer.durability).toBe('flush-sync');
      await waitFor(async () => (((await api.status('restored', TOKEN)).detail.writer as { latestSeq?: string }).latestSeq === vol.spool.lastSeq.toString()), 5_000, 'condition');
    } finally {
      await vol.close();
    }
  });

  it('a fill cut short is finished at the next open, never served half-done', async () => {
    await store.createVolume('cut', BigInt(SIZE), { token: TOKEN });
    const img = randomBytes(SIZE);
    await writeHistory(target, 'cut', TOKEN, BigInt(SIZE), chunksOf(img), { minTimeNs: 0n, nowNs });
    // What an interrupted fill leaves: part of the image in the file, the pending marker.
    await fsp.mkdir(path.join(dir, 'b', 'spool'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'b', 'vol.img'), Buffer.concat([img.subarray(0, MiB), Buffer.alloc(SIZE - MiB)]));
    await fsp.writeFile(path.join(dir, 'b', 'spool', 'catch-up.json'), JSON.stringify({ kind: 'image' }) + '\n');
    const vol = await open('cut', 'b');
    try {
      expect(sha(await deviceOf(vol))).toBe(sha(img));
      await expect(fsp.access(path.join(dir, 'b', 'spool', 'catch-up.json'))).rejects.toThrow();
    } finally {
      await vol.close();
    }
  });

  it('refuses to open while a VolumeRestore is still writing the volume', async () => {
    await store.createVolume('busy', BigInt(SIZE), { token: TOKEN });
    // A restore writer that never finishes: its stream stays open.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow(): AsyncGenerator<RestoreChunkView> {
      yield { offset: 0n, data: randomBytes(4096), zeroLength: 0n, doneBytes: 4096n, volumeSize: BigInt(SIZE) };
      await gate;
    }
    const writing = writeHistory(target, 'busy', TOKEN, BigInt(SIZE), slow(), { minTimeNs: 0n, nowNs });
    await waitFor(() => server.writerConnected('busy'), 5_000, 'condition');
    await fsp.mkdir(path.join(dir, 'c'), { recursive: true });
    await expect(open('busy', 'c')).rejects.toMatchObject({ code: ErrorCodes.VOLUME_BUSY });
    release();
    await writing;
    const vol = await open('busy', 'c');
    await vol.close();
  });

  it('pulls an in-place revert made while the volume was detached instead of shipping over it', async () => {
    await fsp.mkdir(path.join(dir, 'd'), { recursive: true });
    const first = await open('revert', 'd', { mode: 'flush-sync' });
    // The collector creates the volume on the first Hello (no admin token here).
    const before = randomBytes(SIZE);
    await first.resynced;
    await first.backend.pwrite(before, 0n, { fua: false });
    await first.backend.flush();
    const point = await first.mark('before');
    const later = randomBytes(SIZE);
    await first.backend.pwrite(later, 0n, { fua: false });
    await first.backend.flush();
    await first.close();
    // The controller's in-place revert: only the blocks that differ, written as history.
    const w = await writeHistory(target, 'revert', TOKEN, BigInt(SIZE), chunksOf(before, later), { minTimeNs: 0n, nowNs });
    expect(w.firstSeq).toBeGreaterThan(point.seq);

    const again = await open('revert', 'd');
    try {
      expect(sha(await deviceOf(again))).toBe(sha(before));
      await again.resynced;
      // Nothing was resent: the spool continues right after the revert.
      expect(again.spool.lastSeq).toBe(w.lastSeq);
      const out = path.join(dir, 'd-now.img');
      await api.restoreToFile('revert', TOKEN, { now: true }, out);
      expect(sha(await fsp.readFile(out))).toBe(sha(before));
    } finally {
      await again.close();
    }
  });

  it('a fresh node whose clock is an hour behind the collector still completes FLUSH (its clock starts above the collector\'s)', async () => {
    await store.createVolume('clock', BigInt(SIZE), { token: TOKEN });
    await writeHistory(target, 'clock', TOKEN, BigInt(SIZE), chunksOf(randomBytes(SIZE)), { minTimeNs: 0n, nowNs });
    // Same volume on a node with data already on its device (no fill): ships after a resync.
    await fsp.mkdir(path.join(dir, 'e'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'e', 'vol.img'), randomBytes(SIZE));
    const hour = 3_600_000_000_000n;
    const clock = new HybridClock(() => nowNs() - hour);
    const vol = await open('clock', 'e', { clock });
    try {
      const data = randomBytes(4096);
      await vol.backend.pwrite(data, 0n, { fua: false });
      const flushed = vol.backend.flush().then(() => 'flushed');
      const timeout = new Promise((r) => setTimeout(() => r('hung'), 15_000));
      expect(await Promise.race([flushed, timeout])).toBe('flushed');
      await vol.resynced;
    } finally {
      await vol.close();
    }
  });
});
