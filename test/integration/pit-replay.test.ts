import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectReplayEqualsExport, nowNs, peer, runRewind, sha256Export, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

/**
 * The journal is the truth: while independent clients write through `rewind serve`,
 * capture the device's sha256 at known instants (read back over NBD by nbdcopy), then
 * replay the spool up to each instant and compare. Every peer of the NBD acceptance list
 * takes a turn, and after each one the full replay must equal the export.
 */
const SIZE = 64 * 1024 * 1024;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('point-in-time replay of the spool', () => {
  let dir: string;
  let srv: RewindProcess;
  let uri: string;
  const instants: Array<{ label: string; at: bigint; sha: string }> = [];

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-pit-'));
    srv = await startRewind([
      'serve', '--backing', path.join(dir, 'disk.img'), '--size', String(SIZE), '--spool', path.join(dir, 'spool'),
      '--listen', `unix:${path.join(dir, 'nbd.sock')}`, '--http', '127.0.0.1:0',
    ]);
    uri = srv.info.nbd!;
  });

  afterAll(async () => {
    await srv?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Mark the instant after a phase: the clients have exited, so every write is acknowledged. */
  async function capture(label: string): Promise<void> {
    await pause(15);
    const at = nowNs();
    await pause(15);
    instants.push({ label, at, sha: await sha256Export(uri) });
  }

  const replayEqualsExport = () => expectReplayEqualsExport(path.join(dir, 'spool'), SIZE, uri, path.join(dir, 'replay.img'));

  it('captures the empty device as the first instant', async () => {
    await capture('empty');
  });

  it('qemu-io pattern writes at aligned, unaligned and last-byte offsets, write-zeroes and discard', async () => {
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 64k', '-c', 'write -P 0xcd 4097 3001', '-c', `write -P 0xee ${SIZE - 1} 1`, uri]);
    await capture('qemu-io writes');
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -z 8k 8k', '-c', 'discard 32k 16k', '-c', 'write -f -P 0x11 1M 128k', uri]);
    await peer('qemu-io', ['-f', 'raw', '-c', 'read -P 0xab 0 4k', '-c', 'read -P 0xcd 4097 3001', '-c', 'read -P 0 8k 8k', '-c', 'read -P 0 32k 16k', '-c', 'read -P 0x11 1M 128k', '-c', `read -P 0xee ${SIZE - 1} 1`, uri]);
    await capture('qemu-io zero/discard/fua');
    await replayEqualsExport();
  });

  it('nbdcopy writes a random file into the export', async () => {
    const src = path.join(dir, 'random.bin');
    await fs.writeFile(src, Buffer.alloc(4 << 20).map(() => (Math.random() * 256) | 0));
    const img = path.join(dir, 'full.img');
    await fs.copyFile(src, img);
    await fs.truncate(img, SIZE);
    await peer('nbdcopy', [img, uri]);
    await capture('nbdcopy');
    await replayEqualsExport();
  });

  it('a mark taken over HTTP bounds a replay exactly', async () => {
    const res = await fetch(`${srv.info.http}/v1/marks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'before-fio' }) });
    expect(res.status).toBe(201);
    const mark = (await res.json()) as { seq: string };
    expect(BigInt(mark.seq)).toBeGreaterThan(0n);
    const shaAtMark = await sha256Export(uri);
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 0 1M', uri]);
    const out = path.join(dir, 'mark.img');
    const r = await runRewind(['journal', 'replay', path.join(dir, 'spool'), '--out', out, '--size', String(SIZE), '--until-mark', 'before-fio', '--quiet']);
    expect(r.code).toBe(0);
    expect(await sha256File(out)).toBe(shaAtMark);
    const missing = await runRewind(['journal', 'replay', path.join(dir, 'spool'), '--out', out, '--size', String(SIZE), '--until-mark', 'no-such-mark']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/REWIND_ERR_NOT_FOUND.*no-such-mark/);
    await capture('after mark');
  });

  it('fio random 4 KiB writes at QD16 over two connections, verified by crc32c', async () => {
    await peer('fio', [
      '--name=pit', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', '--numjobs=2',
      '--size=8M', '--offset_increment=16M', '--offset=16M', '--verify=crc32c', '--do_verify=1', '--verify_state_save=0',
    ]);
    await capture('fio');
    await replayEqualsExport();
  });

  it('replaying up to each captured instant reproduces the device as it was then', async () => {
    expect(instants.length).toBeGreaterThanOrEqual(6);
    const shas = new Set(instants.map((i) => i.sha));
    expect(shas.size).toBeGreaterThanOrEqual(5); // the instants really differ
    for (const i of instants) {
      const out = path.join(dir, `at-${i.at}.img`);
      const r = await runRewind(['journal', 'replay', path.join(dir, 'spool'), '--out', out, '--size', String(SIZE), '--until', String(i.at), '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      expect(await sha256File(out), `state "${i.label}"`).toBe(i.sha);
      await fs.rm(out);
    }
  });

  it('the journal verifies clean after a clean shutdown and the backing file equals the full replay', async () => {
    const final = await sha256Export(uri);
    expect(await srv.stop()).toBe(0);
    const v = await runRewind(['journal', 'verify', path.join(dir, 'spool'), '--json']);
    expect(v.code).toBe(0);
    const report = JSON.parse(v.stdout) as { corruptions: unknown[]; records: number };
    expect(report.corruptions).toEqual([]);
    expect(report.records).toBeGreaterThan(100);
    expect(await sha256File(path.join(dir, 'disk.img'))).toBe(final);
  });
});
