import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, requirePeer, runPeer, sha256Export, sha256File, startFileExport, type FileExport } from '../helpers/nbd-peers.js';

const SIZE = 128 * 1024 * 1024;

/** A source image with random data, zeros and a sparse tail, so copies exercise every path. */
function makeSource(file: string): void {
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, SIZE);
  const rnd = crypto.randomBytes(4 * 1024 * 1024);
  for (let off = 0; off < SIZE / 2; off += 8 * 1024 * 1024) fs.writeSync(fd, rnd, 0, rnd.length, off);
  fs.writeSync(fd, rnd, 0, 12345, SIZE - 12345);
  fs.closeSync(fd);
}

describe('NBD server with nbdcopy and qemu-img', () => {
  let dir: string;
  let exp: FileExport;
  let src: string;

  beforeAll(async () => {
    for (const t of ['nbdcopy', 'qemu-img']) requirePeer(t);
    dir = makeTempDir();
    src = path.join(dir, 'src.img');
    makeSource(src);
    exp = await startFileExport({ file: path.join(dir, 'export.img'), size: SIZE });
  });

  afterAll(async () => {
    await exp?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('nbdcopy file → export → file round-trips with equal sha256', async () => {
    await runPeer('nbdcopy', [src, exp.uri], { timeoutMs: 120_000 });
    const out = path.join(dir, 'back.img');
    await runPeer('nbdcopy', [exp.uri, out], { timeoutMs: 120_000 });
    const want = await sha256File(src);
    expect(await sha256File(out)).toBe(want);
    expect(await sha256Export(exp.uri)).toBe(want);
  });

  it('qemu-img convert to and from the export, then qemu-img compare', async () => {
    // Dirty the export first so convert really has to write (and zero) everything.
    await runPeer('qemu-io', ['-f', 'raw', '-c', 'write -P 0xee 0 1048576', exp.uri]);
    await runPeer('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, exp.uri], { timeoutMs: 120_000 });
    await runPeer('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, exp.uri], { timeoutMs: 120_000 });
    const out = path.join(dir, 'converted.qcow2');
    await runPeer('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', exp.uri, out], { timeoutMs: 120_000 });
    await runPeer('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, out], { timeoutMs: 120_000 });
    // And compare notices a difference (the assertion can fail).
    await runPeer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x01 100000 1', exp.uri]);
    const r = await runPeer('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, exp.uri], { check: false });
    expect(r.code).toBe(1);
  });
});
