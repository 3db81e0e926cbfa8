import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/journal-fixtures.js';
import { CollectorStore } from '../collector/store/collector-store.js';
import { ErrorCodes } from '../core/errors.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import { RESEND_BEGIN_MARK, RESEND_END_MARK } from '../journal/resend-marks.js';
import { openNodeVolume } from './node-volume.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const MiB = 1024 * 1024;

describe('node volume: protecting a volume that already holds data', () => {
  it('brackets the initial copy with resend marks, so the collector refuses instants inside it and restores every one after it exactly', async () => {
    const root = tempDir('rewind-resend-');
    dirs.push(root);
    const backingPath = path.join(root, 'vol.img');
    const size = 8 * MiB;
    const old = randomBytes(size);
    fs.writeFileSync(backingPath, old);
    const vol = await openNodeVolume({ name: 'v', backingPath, spoolDir: path.join(root, 'spool'), spoolMaxBytes: 256 * MiB, fullPolicy: 'block', mode: 'async' });
    // Writes while the copy runs: journaled as they come, ordered against the chunks.
    const live: Array<[number, Buffer]> = [];
    for (let i = 0; i < 16; i++) live.push([Math.floor(Math.random() * (size - 8192)), randomBytes(4096)]);
    await Promise.all(live.map(([off, data]) => vol.backend.pwrite(data, BigInt(off), { fua: false })));
    await vol.resynced;
    await expect(vol.mark('rewind:sneaky')).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
    const after = randomBytes(4096);
    await vol.backend.pwrite(after, 4096n, { fua: false });
    await vol.backend.flush();
    const device = Buffer.alloc(size);
    await vol.backend.pread(device, 0n);

    const records: JournalRecord[] = [];
    for (let next = 1n; next <= vol.spool.lastSeq; ) {
      const batch = await vol.spool.read(next);
      records.push(...batch);
      next = batch[batch.length - 1]!.seq + 1n;
    }
    await vol.close();
    const names = records.filter((r) => r.kind === RecordKind.Mark).map((r) => [r.seq, r.payload.toString()] as const);
    expect(names.map(([, n]) => n)).toEqual([RESEND_BEGIN_MARK, RESEND_END_MARK]);
    const [beginSeq, endSeq] = names.map(([s]) => s) as [bigint, bigint];
    expect(beginSeq).toBe(1n); // before any chunk or live write
    const base = records.filter((r) => (r.flags & RecordFlag.Base) !== 0);
    expect(base.length).toBeGreaterThan(0);
    expect(base.every((r) => r.seq > beginSeq && r.seq < endSeq)).toBe(true);

    const store = await CollectorStore.open(path.join(root, 'collector'));
    try {
      const cv = await store.createVolume('v', BigInt(size));
      await cv.append(records);
      expect(() => cv.resolve({ seq: base[0]!.seq })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
      const img = Buffer.alloc(size);
      await cv.restore({ seq: cv.durableSeq }, async (c) => {
        if (c.zero) img.fill(0, Number(c.offset), Number(c.offset) + c.length);
        else c.data!.copy(img, Number(c.offset));
      });
      expect(img.equals(device)).toBe(true);
      // At the END mark: the device before the last write.
      const atEnd = Buffer.alloc(size);
      await cv.restore({ seq: endSeq }, async (c) => {
        if (c.zero) atEnd.fill(0, Number(c.offset), Number(c.offset) + c.length);
        else c.data!.copy(atEnd, Number(c.offset));
      });
      const expectedAtEnd = Buffer.from(old);
      for (const [off, data] of live) data.copy(expectedAtEnd, off);
      expect(atEnd.equals(expectedAtEnd)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('after a full spool sent writes to the dirty bitmap, resends them once acks make room, and closes the span only then', async () => {
    const root = tempDir('rewind-resend-dirty-');
    dirs.push(root);
    const vol = await openNodeVolume({ name: 'd', backingPath: path.join(root, 'vol.img'), size: BigInt(8 * MiB), spoolDir: path.join(root, 'spool'), spoolMaxBytes: 4 * MiB, fullPolicy: 'dirty-bitmap', mode: 'async' });
    try {
      await vol.resynced;
      const data = randomBytes(64 * 1024);
      for (let i = 0; i < 96; i++) await vol.backend.pwrite(data, BigInt(i * 64 * 1024), { fua: false });
      expect(vol.spool.state).toBe('dirty-tracking');
      expect(vol.spool.divertedWrites).toBeGreaterThan(0);
      await vol.spool.sync();
      // The collector acknowledges everything journaled so far: room again, so the node resends.
      await vol.spool.ack(vol.spool.lastSeq);
      await vol.resynced;
      await vol.spool.sync();
      expect(vol.spool.state).toBe('ok');
      expect(vol.spool.dirtyExtents()).toEqual([]);
      const recs: JournalRecord[] = [];
      for (let next = vol.spool.ackedSeq + 1n; next <= vol.spool.lastSeq; ) {
        const batch = await vol.spool.read(next);
        recs.push(...batch);
        next = batch[batch.length - 1]!.seq + 1n;
      }
      const marks = recs.filter((r) => r.kind === RecordKind.Mark).map((r) => r.payload.toString());
      expect(marks[marks.length - 1]).toBe(RESEND_END_MARK);
      expect(recs.some((r) => (r.flags & RecordFlag.Base) !== 0)).toBe(true);
    } finally {
      await vol.close();
    }
  });
});
