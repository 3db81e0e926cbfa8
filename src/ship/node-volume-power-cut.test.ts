import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/journal-fixtures.js';
import { loopbackCollector } from '../../test/helpers/loopback-collector.js';
import { PowerCut } from '../../test/helpers/power-cut.js';
import { waitFor } from '../../test/helpers/stream-fixtures.js';
import { restoreToBuffer } from '../../test/integration/collector-store-model.js';
import { openNodeVolume, type NodeVolumeOptions } from './node-volume.js';
import { readSpoolState, writeSpoolState } from './spool-state.js';

const MiB = 1024 * 1024;
const SIZE = 4 * MiB;
const TOKEN = 'power-cut-token';
const collector = loopbackCollector('rewind-power-cut-collector-');
const dirs = collector.dirs;

const opts = (root: string, name: string): NodeVolumeOptions => ({
  name,
  backingPath: path.join(root, 'vol.img'),
  size: BigInt(SIZE),
  spoolDir: path.join(root, 'spool'),
  spoolMaxBytes: 64 * MiB,
  fullPolicy: 'block',
  mode: 'flush-sync',
  collector: { target: { address: collector.server.address, allowPlaintext: true }, token: TOKEN },
  connectTimeoutMs: 10_000,
});

/** What a power cut loses: the journal segments and the backing file keep only what was fdatasync'd. */
const syncedOnly = (p: string) => p.endsWith('.seg') || path.basename(p) === 'vol.img';

describe('node volume: a power cut (flush-sync)', () => {
  it('keeps every write whose FLUSH completed when later writes were shipped and acknowledged before the spool synced them', async () => {
    const live = tempDir('rewind-power-cut-live-');
    const cut = tempDir('rewind-power-cut-image-');
    dirs.push(live, cut);
    const recording = await PowerCut.start(live, { syncedOnly });
    const vol = await openNodeVolume(opts(live, 'pc1'));
    const flushed = Buffer.alloc(SIZE);
    try {
      await vol.resynced;
      // A: written and FLUSHed — the NBD client was told these are durable.
      for (let i = 0; i < 16; i++) {
        const data = randomBytes(8192);
        const off = i * 65536;
        await vol.backend.pwrite(data, BigInt(off), { fua: false });
        data.copy(flushed, off);
      }
      await vol.backend.flush();
      // B: written, shipped from the page cache and acknowledged by the collector, never FLUSHed.
      for (let i = 0; i < 16; i++) await vol.backend.pwrite(randomBytes(8192), BigInt(2 * MiB + i * 65536), { fua: false });
      await vol.shipper!.waitDurable(vol.spool.lastSeq);
      await waitFor(() => vol.spool.ackedSeq === vol.spool.lastSeq, 5_000, 'the spool to take the ack');
      // The ack's state.json replace (tmp + fsync + rename + dir fsync) takes a few ms.
      await new Promise((r) => setTimeout(r, 300));
      recording.image(cut);
    } finally {
      recording.stop();
      await vol.close();
    }

    const after = await openNodeVolume(opts(cut, 'pc1'));
    try {
      await after.resynced;
      const device = Buffer.alloc(SIZE);
      await after.backend.pread(device, 0n);
      // Every FLUSH-acknowledged byte is on the device after the cut…
      expect(device.subarray(0, 2 * MiB).equals(flushed.subarray(0, 2 * MiB))).toBe(true);
      // …and restorable from the collector, at a mark taken after the restart.
      const m = await after.mark('after-cut');
      const img = await restoreToBuffer(collector.store.volume('pc1')!, { seq: m.seq });
      expect(img.subarray(0, 2 * MiB).equals(flushed.subarray(0, 2 * MiB))).toBe(true);
      expect(img.equals(device)).toBe(true);
    } finally {
      await after.close();
    }
  }, 60_000);

  it('redoes a journal that ends before the acked seq (left by a spool that persisted acks ahead of its fdatasync) before setting it aside', async () => {
    const live = tempDir('rewind-power-cut-legacy-live-');
    const cut = tempDir('rewind-power-cut-legacy-image-');
    dirs.push(live, cut);
    const local = (root: string): NodeVolumeOptions => ({ ...opts(root, 'legacy'), mode: 'async', collector: undefined });
    const recording = await PowerCut.start(live, { syncedOnly });
    const vol = await openNodeVolume(local(live));
    const flushed = Buffer.alloc(SIZE);
    try {
      await vol.resynced;
      for (let i = 0; i < 8; i++) {
        const data = randomBytes(4096);
        await vol.backend.pwrite(data, BigInt(i * 131072), { fua: false });
        data.copy(flushed, i * 131072);
      }
      await vol.backend.flush();
      recording.image(cut);
    } finally {
      recording.stop();
      await vol.close();
    }
    // The state such a spool left: an ack recorded past what its journal made durable.
    const statePath = path.join(cut, 'spool', 'state.json');
    const st = await readSpoolState(statePath);
    if (typeof st !== 'object') throw new Error(`state.json of the image is ${st}`);
    await writeSpoolState(statePath, { ...st, ackedSeq: (vol.spool.lastSeq + 16n).toString() });

    const after = await openNodeVolume(local(cut));
    try {
      await after.resynced;
      expect(after.spool.firstSeq).toBe(vol.spool.lastSeq + 17n);
      const device = Buffer.alloc(SIZE);
      await after.backend.pread(device, 0n);
      expect(device.equals(flushed)).toBe(true);
      expect(fs.readFileSync(path.join(cut, 'vol.img')).equals(flushed)).toBe(true);
    } finally {
      await after.close();
    }
  }, 60_000);
});
