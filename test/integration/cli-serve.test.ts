import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peer, runRewind, sha256File, startRewind } from '../helpers/rewind-process.js';

const SIZE = 64 * 1024 * 1024;

describe('rewind serve', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-serve-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('explains missing and bad flags with a code and exits 2', async () => {
    const noBacking = await runRewind(['serve', '--spool', path.join(dir, 's')]);
    expect(noBacking.code).toBe(2);
    expect(noBacking.stderr).toMatch(/REWIND_ERR_INVALID_ARGUMENT: --backing is required/);
    const badListen = await runRewind(['serve', '--backing', path.join(dir, 'x.img'), '--size', '1M', '--spool', path.join(dir, 's'), '--listen', 'nowhere']);
    expect(badListen.code).toBe(2);
    expect(badListen.stderr).toMatch(/cannot read --listen "nowhere"/);
    const badFlag = await runRewind(['serve', '--bogus']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/--bogus/);
    const unknown = await runRewind(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('--help lists every command, and each command has help that names its flags', async () => {
    const top = await runRewind(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['serve', 'journal verify', 'journal dump', 'journal replay', 'journal repair']) expect(top.stdout).toContain(c);
    const serve = await runRewind(['serve', '--help']);
    for (const f of ['--backing', '--spool', '--listen', '--spool-max', '--full-policy']) expect(serve.stdout).toContain(f);
  });

  it('journals a volume that already held data before protection (initial copy) so replay equals it', async () => {
    const img = path.join(dir, 'pre.img');
    await fs.writeFile(img, Buffer.alloc(SIZE));
    const fh = await fs.open(img, 'r+');
    await fh.write(Buffer.alloc(300_000, 0x5a), 0, 300_000, 5_000_000);
    await fh.close();
    const srv = await startRewind(['serve', '--backing', img, '--spool', path.join(dir, 'pre-spool'), '--listen', `unix:${path.join(dir, 'pre.sock')}`]);
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x33 5100000 4096', srv.info.nbd!]);
    expect(await srv.stop()).toBe(0);
    const out = path.join(dir, 'pre-replay.img');
    const r = await runRewind(['journal', 'replay', path.join(dir, 'pre-spool'), '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(img));
  });

  it('after kill -9 during heavy writes, a restart resyncs so the journal again equals the device', async () => {
    const img = path.join(dir, 'crash.img');
    const spool = path.join(dir, 'crash-spool');
    const sock = path.join(dir, 'crash.sock');
    const args = ['serve', '--backing', img, '--size', String(SIZE), '--spool', spool, '--listen', `unix:${sock}`];
    const srv = await startRewind(args);
    // fio runs unverified here: it is killed along with the server mid-stream.
    const fio = spawn('fio', ['--name=crash', '--ioengine=nbd', `--uri=${srv.info.nbd}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', '--size=32M', '--time_based', '--runtime=20'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1500));
    await srv.stop('SIGKILL');
    fio.kill('SIGKILL');
    // The torn spool is repaired on open, the marker says the last run crashed, and the
    // whole device is resent; a clean stop waits for that resync.
    const again = await startRewind(args);
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x44 0 64k', again.info.nbd!]);
    expect(await again.stop()).toBe(0);
    expect(again.stderr()).toMatch(/resync started.*unclean shutdown/);
    const v = await runRewind(['journal', 'verify', spool, '--json']);
    expect(v.code, v.stdout).toBe(0);
    const out = path.join(dir, 'crash-replay.img');
    const r = await runRewind(['journal', 'replay', spool, '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(img));
  });
});
