import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peer, runRewind, sha256Export, sha256File, startRewind } from '../helpers/rewind-process.js';

/**
 * kill -9 of the whole one-machine process while fio writes: on restart the crash marker
 * triggers a full resync (and, if the shipper had sent entries the spool had not yet
 * written, a rebase past the collector's seq). A mark taken afterwards restores exactly,
 * and every FLUSH acknowledged before the kill was already at the collector.
 */
const SIZE = 64 * 1024 * 1024;

describe('rewind up survives kill -9', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-up-crash-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('restarts, resyncs, and a mark taken after the restart restores equal to the device', async () => {
    const data = path.join(dir, 'data');
    const args = ['up', '--data', data, '--size', String(SIZE), '--nbd', `unix:${path.join(dir, 'nbd.sock')}`, '--http', '127.0.0.1:0'];
    const first = await startRewind(args);
    // A flushed write before the crash: flush-sync means the collector has it when qemu-io exits.
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x6b 1M 256k', '-c', 'flush', first.info.nbd!]);
    const flushedAt = BigInt(Date.now()) * 1_000_000n;
    const shaFlushed = await sha256Export(first.info.nbd!);
    const fio = spawn('fio', ['--name=crash', '--ioengine=nbd', `--uri=${first.info.nbd}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', '--size=16M', '--offset=8M', '--time_based', '--runtime=20'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1500));
    await first.stop('SIGKILL');
    fio.kill('SIGKILL');

    const again = await startRewind(args);
    try {
      await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3c 0 64k', again.info.nbd!]);
      const mark = await runRewind(['mark', 'after-crash', '--data', data]);
      expect(mark.code, mark.stderr).toBe(0);
      const device = await sha256Export(again.info.nbd!);
      const out = path.join(dir, 'm.img');
      const r = await runRewind(['restore', '--mark', 'after-crash', '--out', out, '--quiet', '--data', data]);
      expect(r.code, r.stderr).toBe(0);
      expect(await sha256File(out)).toBe(device);
      // The instant right after the flushed write, before fio started, is still exact.
      const r2 = await runRewind(['restore', '--at', String(flushedAt), '--out', out, '--quiet', '--data', data]);
      expect(r2.code, r2.stderr).toBe(0);
      expect(await sha256File(out)).toBe(shaFlushed);
    } finally {
      expect(await again.stop()).toBe(0);
    }
    expect(again.stderr()).toMatch(/resync started.*unclean shutdown/);

    // A SIGTERM is a clean stop: endpoints.json is gone, and the next start neither redoes
    // the spool nor resends the device; the mark is still there.
    await expect(fs.access(path.join(data, 'endpoints.json'))).rejects.toThrow();
    const third = await startRewind(args);
    try {
      const out = path.join(dir, 'm3.img');
      const r = await runRewind(['restore', '--mark', 'after-crash', '--out', out, '--quiet', '--data', data]);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      expect(await third.stop()).toBe(0);
    }
    expect(third.stderr()).not.toMatch(/unclean shutdown|resync started|redo/);
  });
});
