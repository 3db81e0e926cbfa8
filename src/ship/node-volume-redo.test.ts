import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/journal-fixtures.js';
import { openNodeVolume, type NodeVolumeOptions } from './node-volume.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
const opts = (root: string): NodeVolumeOptions => ({
  name: 'redo',
  backingPath: path.join(root, 'vol.img'),
  size: BigInt(4 * MiB),
  spoolDir: path.join(root, 'spool'),
  spoolMaxBytes: 64 * MiB,
  fullPolicy: 'block',
  mode: 'async',
});

describe('node volume: the spool is the write-ahead log', () => {
  it('after a crash that lost unsynced backing writes, every write whose FLUSH completed is back', async () => {
    const live = tempDir('rewind-redo-live-');
    const crash = tempDir('rewind-redo-crash-');
    dirs.push(live, crash);
    const vol = await openNodeVolume(opts(live));
    await vol.resynced;
    const writes: Array<[number, Buffer]> = [];
    for (let i = 0; i < 24; i++) {
      const off = Math.floor(Math.random() * (4 * MiB - 65536) / 512) * 512;
      writes.push([off, randomBytes(512 * (1 + Math.floor(Math.random() * 64)))]);
    }
    for (const [off, data] of writes) await vol.backend.pwrite(data, BigInt(off), { fua: false });
    await vol.backend.trim(0n, 4096, { fua: false });
    await vol.backend.flush();
    const expected = Buffer.alloc(4 * MiB);
    await vol.backend.pread(expected, 0n);

    // The disk as a power cut leaves it: spool as synced (marker still there), and a
    // backing file that never got its writes (FLUSH synced only the spool).
    fs.cpSync(live, crash, { recursive: true });
    expect(fs.existsSync(path.join(crash, 'spool', 'node.running'))).toBe(true);
    const fd = fs.openSync(path.join(crash, 'vol.img'), 'r+');
    for (const [off, data] of writes) fs.writeSync(fd, Buffer.alloc(data.length, 0xee), 0, data.length, off);
    fs.writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 0);
    fs.closeSync(fd);

    const after = await openNodeVolume(opts(crash));
    try {
      const got = Buffer.alloc(4 * MiB);
      await after.backend.pread(got, 0n);
      expect(got.equals(expected)).toBe(true);
      // And on the file itself, not just through the export.
      expect(fs.readFileSync(path.join(crash, 'vol.img')).equals(expected)).toBe(true);
      await after.resynced;
    } finally {
      await after.close();
      await vol.close();
    }
  });
});
