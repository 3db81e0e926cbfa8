import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectorStore } from '../../src/collector/store/index.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { startCollectorChild } from '../helpers/collector-process.js';
import { sha, startFlushSyncNode, writeFlushSteps } from '../helpers/flush-sync-node.js';
import { requirePeer } from '../helpers/nbd-peers.js';
import { waitFor } from '../helpers/stream-fixtures.js';
import { restoreToBuffer } from './collector-store-model.js';

/**
 * Issue 3, faults: "collector disk full → clear error, back-pressure, nothing acknowledged
 * lost, recovers when space returns", end to end: NBD client → our NBD server → spool →
 * shipper (flush-sync) → gRPC → a collector process whose data lives on a small tmpfs.
 * The store-level half (NO_SPACE from VolumeStore.append) is in collector-store-disk-full.
 */
const SIZE = 16 * 1024 * 1024;
const REGION = 4 * 1024 * 1024;
const STEP = 256 * 1024;
const SPOOL_MAX = 32 * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let mnt: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  requirePeer('qemu-io');
  requirePeer('fio');
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-full-e2e-'));
  // The collector's disk: 128 MiB of tmpfs (mount needs root, which CI has), 116 MiB taken.
  mnt = path.join(dir, 'mnt');
  await fsp.mkdir(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128m', 'tmpfs', mnt]);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  try { execFileSync('umount', ['-l', mnt]); } catch { /* not mounted */ }
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('collector disk full, end to end', () => {
  it('FLUSH and then writes wait with NO_SPACE reported; nothing acknowledged is lost; all resumes when space returns', async () => {
    const filler = path.join(mnt, 'filler');
    await fsp.writeFile(filler, Buffer.alloc(116 * 1024 * 1024, 1));
    const data = path.join(mnt, 'data');
    const { child, port } = await startCollectorChild(data, 0, children);
    const node = await startFlushSyncNode({ dir, size: SIZE, collectorPort: port, token: 'full-token', spoolMaxBytes: SPOOL_MAX });
    const { vol, uri } = node;
    let fio: ChildProcess | undefined;
    let writer: ReturnType<typeof writeFlushSteps> | undefined;
    try {
      await vol.resynced;
      writer = writeFlushSteps(uri, REGION, STEP);
      const steps = writer.steps;

      // The collector's disk fills: the shipper reports why, and FLUSH stops completing.
      await waitFor(() => vol.shipper!.status().lastError?.code === ErrorCodes.NO_SPACE, 60_000, 'the shipper to report NO_SPACE');
      expect(vol.shipper!.status().lastError!.message).toMatch(/no space left.*free space/);
      expect(steps.length).toBeGreaterThanOrEqual(3);
      await sleep(300);
      const flushed = steps.length;
      await sleep(1500);
      expect(steps.length).toBe(flushed);

      // Writes without FLUSH go on into the spool until it is full (40 MiB into 32), then wait too.
      fio = spawn('fio', ['--name=fill', '--ioengine=nbd', `--uri=${uri}`, '--rw=write', '--bs=1M', '--iodepth=4', `--offset=${SIZE / 2}`, `--size=${SIZE / 2}`, '--loops=5'], { stdio: 'ignore' });
      const fioDone = new Promise<number | null>((r) => fio!.once('exit', (code) => r(code)));
      await sleep(3000);
      expect(fio.exitCode).toBeNull();
      expect(steps.length).toBe(flushed);
      expect(vol.spool.bytes).toBeGreaterThan(SPOOL_MAX - 2 * 1024 * 1024);
      const held = vol.spool.lastSeq;
      await sleep(1000);
      expect(vol.spool.lastSeq).toBe(held); // fio's writes wait for room

      // Space returns: the shipper resumes on its own, the waiting FLUSH completes, fio ends.
      await fsp.rm(filler);
      const freedAt = Date.now();
      expect(await fioDone).toBe(0);
      await waitFor(() => steps.length >= flushed + 3, 60_000, 'write+flush steps to complete again');
      expect(vol.shipper!.status().lastError).toBeUndefined();
      // The FLUSH that was waiting completed only once there was room again.
      expect(steps[flushed]!.doneAt).toBeGreaterThan(freedAt);
      await writer.stop();

      await node.close();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      // Repairs after the failed appends kept only the bytes they cut, not copies of the segment.
      const jdir = path.join(data, 'volumes', 'vol', 'journal');
      const baks = (await fsp.readdir(jdir)).filter((f) => f.endsWith('.bak'));
      let bakBytes = 0;
      for (const f of baks) bakBytes += (await fsp.stat(path.join(jdir, f))).size;
      expect(bakBytes).toBeLessThan(4 * 1024 * 1024);
      const device = await fsp.readFile(path.join(dir, 'vol.img'));
      const store = await CollectorStore.open(data);
      try {
        const v = store.volume('vol')!;
        // The last four FLUSHes acknowledged before the disk filled, and every one after.
        const check = [...steps.slice(0, flushed).slice(-4), ...steps.slice(flushed)];
        for (const s of check) expect(sha((await restoreToBuffer(v, { time: s.time })).subarray(0, REGION))).toBe(s.region);
        // And the latest state is the device, fio's writes included.
        expect(sha(await restoreToBuffer(v, { time: BigInt(Date.now()) * 1_000_000n }))).toBe(sha(device));
      } finally {
        await store.close();
      }
    } finally {
      await writer?.stop().catch(() => undefined);
      fio?.kill('SIGKILL');
      await node.close().catch(() => undefined);
    }
  }, 180_000);
});
