import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CollectorStore } from '../../src/collector/store/index.js';
import { ErrorCodes, isRewindError } from '../../src/core/errors.js';
import { byteDiff, restoreToBuffer, Rng, VolumeModel } from './collector-store-model.js';

const SIZE = 1024 * 1024;
const mounts: string[] = [];
const open: CollectorStore[] = [];

/** A 3 MiB tmpfs is a disk that fills in a second (needs root, which CI has). */
async function smallDisk(): Promise<string> {
  const mnt = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-cstore-full-'));
  mounts.push(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
  return mnt;
}

afterAll(async () => {
  for (const s of open) await s.close().catch(() => undefined);
  for (const mnt of mounts) {
    try { execFileSync('umount', ['-l', mnt]); } catch { /* not mounted */ }
    await fsp.rm(mnt, { recursive: true, force: true });
  }
});

describe('collector store: disk full', () => {
  it('refuses appends with NO_SPACE, loses nothing acknowledged, and resumes when space returns', async () => {
    const mnt = await smallDisk();
    const filler = path.join(mnt, 'filler');
    await fsp.writeFile(filler, Buffer.alloc(1024 * 1024));
    const store = await CollectorStore.open(path.join(mnt, 'data'), { segmentBytes: 256 * 1024 });
    open.push(store);
    const vol = await store.createVolume('full', BigInt(SIZE));
    const model = new VolumeModel(SIZE, new Rng(3), 'seeded');
    let acked = 0n;
    let failure: unknown;
    for (let i = 0; i < 400 && !failure; i++) {
      const batch = [model.nextRecord(32 * 1024), model.nextRecord(32 * 1024)];
      try {
        acked = await vol.append(batch);
      } catch (err) {
        failure = err;
      }
    }
    expect(isRewindError(failure, ErrorCodes.NO_SPACE), `expected NO_SPACE, got ${String(failure)}`).toBe(true);
    expect((failure as Error).message).toMatch(/free space/);
    expect(vol.durableSeq).toBe(acked);
    // Still full: a retry fails the same way and acknowledges nothing new.
    const replay = new VolumeModel(SIZE, new Rng(3), 'seeded');
    while (replay.seq < acked) replay.nextRecord(32 * 1024);
    const snap = Buffer.from(replay.image);
    await expect(vol.append([replay.nextRecord(32 * 1024), replay.nextRecord(32 * 1024), replay.nextRecord(32 * 1024), replay.nextRecord(32 * 1024)])).rejects.toMatchObject({ code: ErrorCodes.NO_SPACE });
    expect(vol.durableSeq).toBe(acked);
    expect(byteDiff(await restoreToBuffer(vol, { seq: acked }), snap)).toEqual([]);
    // Space returns: the sender resends from durableSeq+1 and goes on. Records written
    // before the failed fdatasync may have been kept by the journal repair, so durableSeq
    // can be past what was acknowledged — never before it.
    await fsp.rm(filler);
    await vol.append([]).catch(() => undefined);
    const again = new VolumeModel(SIZE, new Rng(3), 'seeded');
    let first = true;
    for (let i = 0; i < 5; i++) {
      const from = first ? acked : vol.durableSeq;
      first = false;
      while (again.seq < from) again.nextRecord(32 * 1024);
      const ackedNow = await vol.append([again.nextRecord(32 * 1024)]);
      expect(ackedNow).toBeGreaterThanOrEqual(again.seq);
      while (again.seq < ackedNow) again.nextRecord(32 * 1024);
    }
    const final = vol.durableSeq;
    expect(final).toBeGreaterThanOrEqual(acked + 5n);
    expect(byteDiff(await restoreToBuffer(vol, { seq: final }), again.image)).toEqual([]);
    await store.close();
    const reopened = await CollectorStore.open(path.join(mnt, 'data'), { segmentBytes: 256 * 1024 });
    open.push(reopened);
    expect(reopened.volume('full')!.durableSeq).toBe(final);
    await reopened.close();
  });

  it('with two appends in flight, as the Append handler keeps them: a failure fails what follows, and nothing acknowledged is lost', async () => {
    const mnt = await smallDisk();
    await fsp.writeFile(path.join(mnt, 'filler'), Buffer.alloc(1024 * 1024));
    const store = await CollectorStore.open(path.join(mnt, 'data'), { segmentBytes: 256 * 1024 });
    open.push(store);
    const vol = await store.createVolume('full2', BigInt(SIZE));
    const model = new VolumeModel(SIZE, new Rng(5), 'seeded');
    const images = new Map<bigint, Buffer>();
    let acked = 0n;
    let failure: unknown;
    const inFlight: Array<{ last: bigint; durable: Promise<bigint> }> = [];
    for (let i = 0; i < 400 && !failure; i++) {
      inFlight.push({ durable: vol.append([model.nextRecord(32 * 1024), model.nextRecord(32 * 1024)]), last: model.seq });
      images.set(model.seq, Buffer.from(model.image));
      if (inFlight.length < 2) continue;
      const a = inFlight.shift()!;
      try {
        // At least its own records; more when one fdatasync covered the next batch too.
        const d = await a.durable;
        expect(d).toBeGreaterThanOrEqual(a.last);
        if (d > acked) acked = d;
      } catch (err) {
        failure = err;
      }
    }
    const after = await Promise.allSettled(inFlight.map((a) => a.durable));
    expect(isRewindError(failure, ErrorCodes.NO_SPACE), `expected NO_SPACE, got ${String(failure)}`).toBe(true);
    // The append queued behind the failed one does not succeed on its own.
    expect(after.every((r) => r.status === 'rejected')).toBe(true);
    expect(vol.durableSeq).toBeGreaterThanOrEqual(acked);
    expect(byteDiff(await restoreToBuffer(vol, { seq: acked }), images.get(acked)!)).toEqual([]);
    // Space returns (the repair on open backs up a torn tail first, which needs room).
    await fsp.rm(path.join(mnt, 'filler'));
    await store.close();
    const reopened = await CollectorStore.open(path.join(mnt, 'data'), { segmentBytes: 256 * 1024 });
    open.push(reopened);
    const d = reopened.volume('full2')!.durableSeq;
    expect(d).toBeGreaterThanOrEqual(acked);
    expect(byteDiff(await restoreToBuffer(reopened.volume('full2')!, { seq: d }), images.get(d)!)).toEqual([]);
    await reopened.close();
  });
});
