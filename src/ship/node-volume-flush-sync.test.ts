import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/journal-fixtures.js';
import { loopbackCollector } from '../../test/helpers/loopback-collector.js';
import { restoreToBuffer } from '../../test/integration/collector-store-model.js';
import { startCollectorGrpc } from '../collector/grpc/server.js';
import { storePort } from '../collector/grpc/store-adapter.js';
import { CollectorStore } from '../collector/store/collector-store.js';
import { openNodeVolume } from './node-volume.js';
import { ErrorCodes } from '../core/errors.js';
import { waitFor } from '../../test/helpers/stream-fixtures.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;
const TOKEN = 'flush-sync-token';
const collector = loopbackCollector('rewind-flush-sync-collector-');
const dirs = collector.dirs;

describe('node volume: flush-sync under the dirty-bitmap full policy', () => {
  it('a FLUSH after writes the full spool sent to the dirty bitmap completes only once the collector holds them, restorable exactly', async () => {
    const root = tempDir('rewind-flush-sync-dirty-');
    dirs.push(root);
    const vol = await openNodeVolume({
      name: 'fsd',
      backingPath: path.join(root, 'vol.img'),
      size: BigInt(SIZE),
      spoolDir: path.join(root, 'spool'),
      spoolMaxBytes: 4 * MiB,
      fullPolicy: 'dirty-bitmap',
      mode: 'flush-sync',
      // Slower than the writes below: the spool fills and writes go to the bitmap.
      collector: { target: { address: collector.server.address, allowPlaintext: true }, token: TOKEN, bandwidthBytesPerSec: 4 * MiB },
      connectTimeoutMs: 10_000,
      // The promise itself, without a deadline (flush-wait.ts).
      flushWait: { timeoutMs: 0, policy: 'async' },
    });
    try {
      await vol.resynced;
      const written = Buffer.alloc(SIZE);
      for (let i = 0; i < 128; i++) {
        const data = randomBytes(64 * 1024);
        await vol.backend.pwrite(data, BigInt(i * 64 * 1024), { fua: false });
        data.copy(written, i * 64 * 1024);
      }
      expect(vol.spool.divertedWrites).toBeGreaterThan(0);
      await vol.backend.flush();
      // Right after the FLUSH: the collector's newest point is exact and holds every write.
      const v = collector.store.volume('fsd')!;
      const img = await restoreToBuffer(v, { seq: v.durableSeq });
      expect(img.subarray(0, 8 * MiB).equals(written.subarray(0, 8 * MiB))).toBe(true);
    } finally {
      await vol.close();
    }
  }, 90_000);
});

describe('node volume: a bounded flush-sync wait (--flush-wait-timeout)', () => {
  it('during a collector outage a FLUSH completes after the deadline, the volume is Degraded and async until the collector catches up, then flush-sync again', async () => {
    const root = tempDir('rewind-flush-wait-');
    dirs.push(root);
    const data = path.join(root, 'collector');
    let own = await CollectorStore.open(data);
    let grpc = await startCollectorGrpc({ store: storePort(own), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
    const port = grpc.port!;
    const vol = await openNodeVolume({
      name: 'fw',
      backingPath: path.join(root, 'vol.img'),
      size: BigInt(4 * MiB),
      spoolDir: path.join(root, 'spool'),
      spoolMaxBytes: 64 * MiB,
      fullPolicy: 'block',
      mode: 'flush-sync',
      collector: { target: { address: `127.0.0.1:${port}`, allowPlaintext: true }, token: TOKEN },
      connectTimeoutMs: 10_000,
      flushWait: { timeoutMs: 1_000, policy: 'async' },
    });
    const seen: boolean[] = [];
    try {
      await vol.resynced;
      await vol.backend.pwrite(randomBytes(4096), 0n, { fua: false });
      await vol.backend.flush();

      await grpc.close();
      await own.close();
      const outage = randomBytes(4096);
      await vol.backend.pwrite(outage, 8192n, { fua: false });
      const t0 = Date.now();
      const flushed = vol.backend.flush().then(() => Date.now() - t0);
      const took = await Promise.race([flushed, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
      // Today's wait has no deadline: it would still be waiting.
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(5_000);
      expect(vol.durability()).toMatchObject({ mode: 'flush-sync', effective: 'async', degraded: true, reason: 'FlushWaitTimeout', timeouts: 1 });
      vol.onDurability((st) => seen.push(st.degraded));
      // While degraded a FLUSH is local only: it does not wait again.
      await vol.backend.pwrite(randomBytes(4096), 16384n, { fua: false });
      const t1 = Date.now();
      await vol.backend.flush();
      expect(Date.now() - t1).toBeLessThan(500);

      // The collector is back: once it holds what the spool held, flush-sync resumes.
      own = await CollectorStore.open(data);
      grpc = await startCollectorGrpc({ store: storePort(own), listen: { host: '127.0.0.1', port }, allowPlaintext: true });
      await waitFor(() => !vol.durability().degraded, 30_000, 'the volume to leave Degraded');
      expect(seen).toEqual([false]);
      expect(own.volume('fw')!.durableSeq).toBeGreaterThanOrEqual(vol.spool.lastSeq - 0n);
      const img = await restoreToBuffer(own.volume('fw')!, { seq: own.volume('fw')!.durableSeq });
      expect(img.subarray(8192, 8192 + 4096).equals(outage)).toBe(true);
      await vol.backend.pwrite(randomBytes(4096), 24576n, { fua: false });
      await vol.backend.flush();
      expect(own.volume('fw')!.durableSeq).toBe(vol.spool.lastSeq);
      expect(vol.durability()).toMatchObject({ effective: 'flush-sync', degraded: false, timeouts: 1 });
    } finally {
      await vol.close();
      await grpc.close();
      await own.close();
    }
  }, 90_000);

  it('with --flush-wait-policy fail a FLUSH past the deadline fails with REWIND_ERR_TIMEOUT and the volume is Degraded', async () => {
    const root = tempDir('rewind-flush-wait-fail-');
    dirs.push(root);
    const own = await CollectorStore.open(path.join(root, 'collector'));
    const grpc = await startCollectorGrpc({ store: storePort(own), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
    const vol = await openNodeVolume({
      name: 'fwf',
      backingPath: path.join(root, 'vol.img'),
      size: BigInt(4 * MiB),
      spoolDir: path.join(root, 'spool'),
      spoolMaxBytes: 64 * MiB,
      fullPolicy: 'block',
      mode: 'sync',
      collector: { target: { address: `127.0.0.1:${grpc.port!}`, allowPlaintext: true }, token: TOKEN },
      connectTimeoutMs: 10_000,
      flushWait: { timeoutMs: 500, policy: 'fail' },
    });
    try {
      await vol.resynced;
      await grpc.close();
      await own.close();
      await expect(vol.backend.pwrite(randomBytes(4096), 0n, { fua: false })).rejects.toMatchObject({ code: ErrorCodes.TIMEOUT });
      expect(vol.durability()).toMatchObject({ mode: 'sync', effective: 'sync', degraded: true, reason: 'FlushWaitTimeout', timeouts: 1 });
    } finally {
      await vol.close();
    }
  }, 60_000);
});
