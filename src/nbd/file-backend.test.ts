import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileBackend } from './file-backend.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmpFile(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-fb-'));
  dirs.push(d);
  return path.join(d, 'vol.img');
}

describe('FileBackend pool writes', () => {
  it('lands many concurrent large writes in arrival order, contiguous runs and overlaps included', async () => {
    const file = tmpFile();
    const size = 8 << 20;
    const b = await FileBackend.open(file, { size });
    const model = Buffer.alloc(size);
    const writes: Array<Promise<void>> = [];
    const piece = 256 * 1024; // above the inline limit: every write goes through the queue
    // A sequential run (coalesced into one pwritev), then writes that overlap it and each
    // other: the last one issued must win byte for byte.
    const plan: Array<[number, number, number]> = [];
    for (let i = 0; i < 12; i++) plan.push([i * piece, piece, 0x10 + i]);
    plan.push([piece / 2, piece, 0xa1], [piece, 3 * piece, 0xa2], [piece + 100, piece, 0xa3], [7 * piece, piece * 2, 0xa4]);
    for (const [off, len, fill] of plan) {
      const data = Buffer.alloc(len, fill);
      data.copy(model, off);
      // Half as gather writes, as the NBD server hands over socket slices.
      if (fill % 2 === 0) writes.push(b.pwrite(data, BigInt(off), { fua: false }));
      else writes.push(b.pwritev([data.subarray(0, 1000), data.subarray(1000)], BigInt(off), { fua: false }));
    }
    await Promise.all(writes);
    const back = Buffer.alloc(size);
    await b.pread(back, 0n);
    expect(back.equals(model)).toBe(true);
    expect(fs.readFileSync(file).equals(model)).toBe(true);
    await b.close();
  });

  it('reports a failed pool write to its caller and keeps serving later writes', async () => {
    const file = tmpFile();
    const b = await FileBackend.open(file, { size: 4 << 20, readOnly: false });
    // Close the descriptor under the backend: the next pool write fails with EBADF.
    const fd = (b as unknown as { fd: number }).fd;
    fs.closeSync(fd);
    await expect(b.pwrite(Buffer.alloc(128 * 1024, 1), 0n, { fua: false })).rejects.toMatchObject({ code: expect.stringMatching(/^REWIND_ERR_/) });
    // The queue moved on: another write is attempted (and fails the same way) rather than hanging.
    await expect(b.pwrite(Buffer.alloc(128 * 1024, 2), 1n << 20n, { fua: false })).rejects.toBeTruthy();
  });
});
