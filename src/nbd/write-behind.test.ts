import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WriteBehind } from './write-behind.js';
import { ErrorCodes } from '../core/errors.js';
import { FileBackend } from './file-backend.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-wb-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('WriteBehind', () => {
  it('lands every write in submission order, across ring wraps and a full ring', async () => {
    const file = path.join(tmp(), 'img');
    fs.writeFileSync(file, Buffer.alloc(8 << 20));
    const fd = fs.openSync(file, 'r+');
    const wb = new WriteBehind(fd, file);
    const expected = Buffer.alloc(8 << 20);
    // 48 MiB submitted at once through a 16 MiB ring (most of it waits for room): 64 KiB
    // writes over 8 MiB, so every block is overwritten several times and only submission
    // order gives the expected image.
    const submits: Promise<void>[] = [];
    for (let i = 0; i < 768; i++) {
      const buf = randomBytes(64 << 10);
      const off = ((i * 37) % 128) * (64 << 10);
      buf.copy(expected, off);
      // The caller's buffer is free once submit resolved (at once while the ring has room).
      submits.push(wb.submit(buf, off).then(() => void buf.fill(0xee)));
    }
    await Promise.all(submits);
    await wb.drained();
    await wb.close();
    fs.closeSync(fd);
    expect(fs.readFileSync(file).equals(expected)).toBe(true);
  });

  it('overlapping() waits only for queued writes to that range', async () => {
    const file = path.join(tmp(), 'img');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    const fd = fs.openSync(file, 'r+');
    const wb = new WriteBehind(fd, file);
    try {
      await wb.submit(Buffer.alloc(4096, 7), 8192);
      await wb.overlapping(8192 + 100, 10);
      const got = Buffer.alloc(4096);
      fs.readSync(fd, got, 0, 4096, 8192);
      expect(got.equals(Buffer.alloc(4096, 7))).toBe(true);
      // Nothing queued over [0, 4096): resolves without waiting for anything.
      await wb.overlapping(0, 4096);
    } finally {
      await wb.close();
      fs.closeSync(fd);
    }
  });

  it('a failed write stops it: waiters and later calls get the error, which says the journal holds the data', async () => {
    const file = path.join(tmp(), 'img');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    const fd = fs.openSync(file, 'r'); // read-only: the worker's pwrite fails with EBADF
    const seen: Error[] = [];
    const wb = new WriteBehind(fd, file, (e) => seen.push(e));
    await wb.submit(Buffer.alloc(4096, 1), 0);
    await expect(wb.drained()).rejects.toThrow(/failed after it was acknowledged.*journal holds/);
    expect(wb.error?.code).toBe(ErrorCodes.IO);
    await expect(wb.submit(Buffer.alloc(4096), 4096)).rejects.toThrow(/failed after it was acknowledged/);
    await expect(wb.overlapping(0, 10)).rejects.toThrow(/failed after it was acknowledged/);
    await expect(wb.close()).rejects.toThrow(/failed after it was acknowledged/);
    expect(seen).toHaveLength(1); // told once, for the owner's log
    fs.closeSync(fd);
  });
});

describe('WriteBehind close', () => {
  it('writes every stalled write before it stops, and refuses writes after', async () => {
    const file = path.join(tmp(), 'img');
    fs.writeFileSync(file, Buffer.alloc(8 << 20));
    const fd = fs.openSync(file, 'r+');
    const wb = new WriteBehind(fd, file);
    // 12 288 writes at once against 4096 slots: two thirds are still stalled at close().
    const submits: Promise<void>[] = [];
    let admitted = 0;
    for (let i = 0; i < 12288; i++) {
      const buf = Buffer.alloc(512);
      buf.writeUInt32LE(i + 1, 0);
      submits.push(wb.submit(buf, i * 512).then(() => void admitted++));
    }
    const closed = wb.close();
    await expect(wb.submit(Buffer.alloc(512), 0)).rejects.toThrow(/closed/);
    await closed;
    // Every stalled write was taken in (and written) before the worker was stopped.
    expect(admitted).toBe(12288);
    await Promise.all(submits);
    fs.closeSync(fd);
    const img = fs.readFileSync(file);
    let missing = 0;
    for (let i = 0; i < 12288; i++) if (img.readUInt32LE(i * 512) !== i + 1) missing++;
    expect(missing).toBe(0);
  });

  it('close() returns in a process with nothing else to keep it alive', () => {
    // vitest keeps its own event loop busy, so this runs in a bare node process.
    const dir = tmp();
    const mod = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/src/nbd/write-behind.js');
    const script = `
      import fs from 'node:fs';
      import { WriteBehind } from ${JSON.stringify(mod)};
      const file = ${JSON.stringify(path.join(dir, 'img'))};
      fs.writeFileSync(file, Buffer.alloc(1 << 20));
      const fd = fs.openSync(file, 'r+');
      const wb = new WriteBehind(fd, file);
      await wb.submit(Buffer.alloc(4096, 9), 0);
      await wb.drained();
      const t0 = Date.now();
      await wb.close();
      console.log('closed in', Date.now() - t0, 'ms');`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    const m = /closed in (\d+) ms/.exec(out);
    expect(m, `child printed: ${out}`).not.toBeNull();
    // The stop rings the worker's bell: no waiting out its 1 s sleep.
    expect(Number(m![1])).toBeLessThan(500);
    expect(fs.readFileSync(path.join(dir, 'img')).subarray(0, 4096).equals(Buffer.alloc(4096, 9))).toBe(true);
  });
});

describe('FileBackend with writeBehind', () => {
  it('reads, flushes, large writes and zeroing see every small write acknowledged before them', async () => {
    const file = path.join(tmp(), 'img');
    const size = 4 << 20;
    const b = await FileBackend.open(file, { size, writeBehind: true });
    const expected = Buffer.alloc(size);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 2000; i++) {
      const off = ((i * 7919) % 1024) * 4096;
      const buf = randomBytes(4096);
      buf.copy(expected, off);
      writes.push(b.pwrite(buf, BigInt(off), { fua: false }));
      if (i % 100 === 0) {
        // A read right after the write was acknowledged sees it.
        await writes[writes.length - 1];
        const got = Buffer.alloc(4096);
        await b.pread(got, BigInt(off));
        expect(got.equals(buf)).toBe(true);
      }
    }
    await Promise.all(writes);
    // A large write over small ones still queued lands after them.
    const big = randomBytes(1 << 20);
    writes.length = 0;
    for (let i = 0; i < 64; i++) {
      const s = randomBytes(4096);
      writes.push(b.pwrite(s, BigInt(i * 4096), { fua: false }));
    }
    writes.push(b.pwrite(big, 0n, { fua: false }));
    big.copy(expected, 0);
    // Zeroing a range with queued writes leaves it zero.
    writes.push(b.pwrite(randomBytes(4096), BigInt(2 << 20), { fua: false }));
    await Promise.all(writes);
    await b.zero(BigInt(2 << 20), 8192, { fua: false, noHole: true });
    expected.fill(0, 2 << 20, (2 << 20) + 8192);
    await b.flush();
    const all = Buffer.alloc(size);
    await b.pread(all, 0n);
    expect(all.equals(expected)).toBe(true);
    await b.close();
    expect(fs.readFileSync(file).equals(expected)).toBe(true);
  });
});
