import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectorStore } from '../../src/collector/store/index.js';
import { killHard, startCollectorChild } from '../helpers/collector-process.js';
import { sha, startFlushSyncNode, writeFlushSteps, type FlushStep } from '../helpers/flush-sync-node.js';
import { qemuIo, requirePeer } from '../helpers/nbd-peers.js';
import { waitFor } from '../helpers/stream-fixtures.js';
import { restoreToBuffer } from './collector-store-model.js';

/**
 * Issue 3, faults: "kill -9 of the collector during sustained writes, restart → in
 * flush-sync mode every FLUSH that completed before the kill is restorable".
 *
 * The node side is the real one (openNodeVolume: journal filter, spool, shipper, flush-sync)
 * behind our NBD server; the collector runs in a process of its own. fio keeps writing the
 * upper half of the device the whole time, while qemu-io write+FLUSH steps fill the lower
 * region (helpers/flush-sync-node.ts). After the collector is killed, its data directory is
 * opened as it was left and every step completed before the kill must restore exactly; a
 * FLUSH issued while it is down must not complete until it is back.
 */
const SIZE = 16 * 1024 * 1024;
const REGION = 4 * 1024 * 1024; // qemu-io steps write here
const OUTAGE_AT = 4 * 1024 * 1024; // the write+flush issued during the outage, 64 KiB
const STEP = 64 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nsNow = () => BigInt(Date.now()) * 1_000_000n;

/**
 * At most 12 steps to restore (each restore reads the whole device): the last four, where a
 * lost acknowledgement would show, and the rest spread evenly.
 */
function sample(steps: FlushStep[]): FlushStep[] {
  const spread = steps.slice(0, -4).filter((_, i, a) => i % Math.ceil(a.length / 8) === 0);
  return [...spread, ...steps.slice(-4)];
}

let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  requirePeer('qemu-io');
  requirePeer('fio');
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-kill-flush-'));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Restore each time from the collector data in `data` (opened here): the qemu-io region's sha256 and the outage block. */
async function restoredAt(data: string, times: bigint[]): Promise<Array<{ region: string; outage: Buffer }>> {
  const store = await CollectorStore.open(data);
  try {
    const v = store.volume('vol')!;
    const out = [];
    for (const time of times) {
      const img = await restoreToBuffer(v, { time });
      out.push({ region: sha(img.subarray(0, REGION)), outage: img.subarray(OUTAGE_AT, OUTAGE_AT + STEP) });
    }
    return out;
  } finally {
    await store.close();
  }
}

describe('kill -9 of the collector under NBD writes (flush-sync)', () => {
  it('every FLUSH that completed before the kill restores exactly; a FLUSH during the outage waits for the restart', async () => {
    const data = path.join(dir, 'collector');
    let { child, port } = await startCollectorChild(data, 0, children);
    const node = await startFlushSyncNode({ dir, size: SIZE, collectorPort: port, token: 'kill-flush-token', spoolMaxBytes: 256 * 1024 * 1024 });
    const { vol, uri } = node;
    let fio: ChildProcess | undefined;
    let steps: ReturnType<typeof writeFlushSteps> | undefined;
    try {
      await vol.resynced;
      fio = spawn('fio', ['--name=load', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=4k', '--iodepth=8', `--offset=${SIZE / 2}`, `--size=${SIZE / 2}`, '--time_based', '--runtime=60'], { stdio: 'ignore' });
      steps = writeFlushSteps(uri, REGION, STEP);

      await waitFor(() => steps!.steps.length >= 8, 30_000, 'eight write+flush steps before the kill');
      await killHard(child);
      const killedAt = Date.now();
      const before = steps.steps.filter((s) => s.doneAt <= killedAt);
      expect(before.length).toBeGreaterThanOrEqual(5);
      // While the collector is down: a write + FLUSH must not complete.
      const outage = qemuIo(uri, [`write -P 0x5a ${OUTAGE_AT} ${STEP}`, 'flush']).then(() => Date.now());
      // The collector's disk, as the kill left it: every step completed before the kill.
      const checked = sample(before);
      const got = await restoredAt(data, checked.map((s) => s.time));
      expect(got.map((g) => g.region)).toEqual(checked.map((s) => s.region));
      await sleep(500);
      const restartAt = Date.now();
      ({ child, port } = await startCollectorChild(data, port, children));
      const outageDone = await outage;
      expect(outageDone).toBeGreaterThanOrEqual(restartAt);
      const outageTime = nsNow();
      // Lag recovers while fio keeps writing, and FLUSHes complete again.
      await waitFor(() => vol.shipper!.status().lagSeconds < 1, 30_000, 'the shipper to catch up with fio after the restart');
      expect(fio.exitCode).toBeNull();
      await waitFor(() => steps!.steps.filter((s) => s.startedAt > outageDone).length >= 3, 30_000, 'three write+flush steps after the restart');
      await steps.stop();
      fio.kill('SIGKILL');

      // Once more after the restart, with everything drained: every step and the outage write.
      await node.close();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      const later = sample(steps.steps);
      const all = await restoredAt(data, [...later.map((s) => s.time), outageTime]);
      expect(all.slice(0, -1).map((g) => g.region)).toEqual(later.map((s) => s.region));
      expect(all.at(-1)!.outage.equals(Buffer.alloc(STEP, 0x5a))).toBe(true);
    } finally {
      await steps?.stop().catch(() => undefined);
      fio?.kill('SIGKILL');
      await node.close().catch(() => undefined);
    }
  }, 120_000);
});
