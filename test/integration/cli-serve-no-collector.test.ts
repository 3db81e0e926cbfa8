import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peer, runRewind, sha256File, startRewind } from '../helpers/rewind-process.js';

/**
 * `rewind serve` with no collector: the spool is the only history and nothing frees it.
 * Writers never wait on a collector that does not exist; the local history ends where the
 * spool filled, and replay refuses instants after that instead of inventing them.
 */
const MiB = 1024 * 1024;
const SIZE = 32 * MiB;

describe('rewind serve without a collector', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-serve-nc-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses --full-policy block without --collector, saying what to do', async () => {
    const r = await runRewind(['serve', '--backing', path.join(dir, 'x.img'), '--size', String(SIZE), '--spool', path.join(dir, 'xs'), '--full-policy', 'block']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/REWIND_ERR_INVALID_ARGUMENT/);
    expect(r.stderr).toMatch(/needs --collector/);
  });

  it('writes past --spool-max complete; the journal stops where the spool filled and replay refuses instants after it', async () => {
    const spool = path.join(dir, 'spool');
    const node = await startRewind(['serve', '--backing', path.join(dir, 'v.img'), '--size', String(SIZE), '--spool', spool, '--spool-max', '4M', '--listen', '127.0.0.1:0']);
    try {
      // 24 MiB through a 4 MiB spool: before, the last writes waited for acks forever.
      await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 0 2M', node.info.nbd!], 30_000);
      const early = path.join(dir, 'early.img');
      await peer('qemu-io', ['-f', 'raw', '-c', `write -P 0x6b ${4 * MiB} ${24 * MiB}`, node.info.nbd!], 60_000);
      const device = path.join(dir, 'device.img');
      await peer('nbdcopy', [node.info.nbd!, device]);
      await node.stop();
      const stop = JSON.parse(await fs.readFile(path.join(spool, 'journal-stopped.json'), 'utf8')) as { seq: string; time: string };
      expect(BigInt(stop.seq)).toBeGreaterThan(0n);
      // To the end: refused, the device changed after the journal stopped.
      const all = await runRewind(['journal', 'replay', spool, '--out', path.join(dir, 'all.img'), '--quiet']);
      expect(all.code).not.toBe(0);
      expect(all.stderr).toMatch(/REWIND_ERR_POINT_OUT_OF_WINDOW/);
      expect(all.stderr).toMatch(/stopped journaling at seq/);
      // Up to where it stopped: accepted, and the first 2 MiB are what was written then.
      const ok = await runRewind(['journal', 'replay', spool, '--out', early, '--until-seq', stop.seq, '--quiet']);
      expect(ok.code, ok.stderr).toBe(0);
      const img = await fs.readFile(early);
      expect(img.subarray(0, 2 * MiB).every((b) => b === 0x5a)).toBe(true);
      expect(await sha256File(device)).not.toBe(await sha256File(early));
    } finally {
      await node.stop().catch(() => undefined);
    }
  });
});
