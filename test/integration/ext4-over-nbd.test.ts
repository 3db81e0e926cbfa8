import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peer, runRewind, sha256Export, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

/**
 * A real ext4 filesystem over our export, with no kernel NBD: nbdfuse exposes the export
 * as a file (4 connections, multi-conn), a loop device turns it into a block device, and
 * the kernel's ext4 writes through it (1 KiB blocks, FLUSH but no FUA — PEERS.md).
 */
const SIZE = 128 * 1024 * 1024;

describe('ext4 over nbdfuse + loop on a journaled export', () => {
  let dir: string;
  let srv: RewindProcess;
  let fuse: ChildProcess | undefined;
  let loop: string | undefined;
  const mnt = () => path.join(dir, 'fuse');
  const fsDir = () => path.join(dir, 'fs');
  const files = new Map<string, string>();

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-ext4-'));
    await fs.mkdir(mnt());
    await fs.mkdir(fsDir());
    srv = await startRewind([
      'serve', '--backing', path.join(dir, 'disk.img'), '--size', String(SIZE), '--spool', path.join(dir, 'spool'),
      '--listen', `unix:${path.join(dir, 'nbd.sock')}`,
    ]);
  });

  afterAll(async () => {
    // Tear down in reverse even after a failure, so no mount or loop device outlives the test.
    await peer('umount', [fsDir()]).catch(() => {});
    if (loop) await peer('losetup', ['-d', loop]).catch(() => {});
    await peer('fusermount3', ['-u', mnt()]).catch(() => {});
    fuse?.kill('SIGKILL');
    await srv?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function attach(): Promise<void> {
    fuse = spawn('nbdfuse', [mnt(), srv.info.nbd!], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    fuse.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    fuse.once('error', (e) => (err += String(e)));
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const st = await fs.stat(path.join(mnt(), 'nbd'));
        if (st.size === SIZE) break;
      } catch {
        /* not mounted yet */
      }
      if (Date.now() > deadline) throw new Error(`nbdfuse did not expose ${mnt()}/nbd: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    loop = (await peer('losetup', ['-f', '--show', path.join(mnt(), 'nbd')])).trim();
  }

  async function detach(): Promise<void> {
    await peer('losetup', ['-d', loop!]);
    loop = undefined;
    const exited = new Promise((r) => fuse!.once('exit', r));
    await peer('fusermount3', ['-u', mnt()]);
    await exited;
    fuse = undefined;
  }

  it('makes a filesystem, writes a tree of files, and fsck finds it clean', async () => {
    await attach();
    await peer('mkfs.ext4', ['-F', '-q', loop!]);
    await peer('mount', [loop!, fsDir()]);
    for (let d = 0; d < 4; d++) {
      await fs.mkdir(path.join(fsDir(), `dir${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 6; f++) {
        const body = Buffer.alloc(1000 + ((d * 7 + f * 131) % 50) * 1024).map((_, i) => (i * (d + 3) + f) & 0xff);
        const rel = path.join(`dir${d}`, f % 2 ? 'sub' : '', `file${f}.bin`);
        await fs.writeFile(path.join(fsDir(), rel), body);
        files.set(rel, createHash('sha256').update(body).digest('hex'));
      }
    }
    await peer('sync', []);
    await peer('umount', [fsDir()]);
    await peer('e2fsck', ['-fn', loop!]);
    await detach();
  });

  it('replaying the spool onto a zeroed image reproduces the device byte for byte', async () => {
    const out = path.join(dir, 'replay.img');
    const r = await runRewind(['journal', 'replay', path.join(dir, 'spool'), '--out', out, '--size', String(SIZE), '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(out)).toBe(await sha256Export(srv.info.nbd!));
    // And the replayed image is itself a clean ext4 filesystem.
    await peer('e2fsck', ['-fn', out]);
  });

  it('remounted, every file reads back equal', async () => {
    await attach();
    await peer('mount', [loop!, fsDir()]);
    for (const [rel, sha] of files) {
      const body = await fs.readFile(path.join(fsDir(), rel));
      expect(createHash('sha256').update(body).digest('hex'), rel).toBe(sha);
    }
    await peer('umount', [fsDir()]);
    await detach();
  });
});
