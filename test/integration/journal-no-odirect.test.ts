import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRec, collect, writeRec } from '../helpers/journal-fixtures.js';
import { verifyJournal } from '../../src/journal/verify.js';
import { JournalWriter } from '../../src/journal/writer.js';

let mnt: string | undefined;

afterAll(() => {
  if (!mnt) return;
  try { execFileSync('umount', ['-l', mnt]); } catch { /* not mounted */ }
  fs.rmSync(mnt, { recursive: true, force: true });
});

describe('journal on a filesystem that refuses O_DIRECT', () => {
  it('falls back to the page cache for every segment, rotations included, and reads back whole', async () => {
    mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-ramfs-'));
    // ramfs creates the file, then refuses O_DIRECT with EINVAL (needs root, which CI has).
    execFileSync('mount', ['-t', 'ramfs', 'ramfs', mnt]);
    const probe = path.join(mnt, 'probe');
    expect(() => fs.openSync(probe, fs.constants.O_CREAT | fs.constants.O_RDWR | fs.constants.O_DIRECT)).toThrow(/EINVAL/);
    const d = path.join(mnt, 'journal');
    const w = await JournalWriter.open(d, { directIo: true, segmentBytes: 16 * 1024 });
    for (let s = 1n; s <= 60n; s++) w.append(writeRec(s, 1500));
    await w.sync();
    expect(w.segmentCount).toBeGreaterThan(4);
    await w.close();
    const w2 = await JournalWriter.open(d, { directIo: true, segmentBytes: 16 * 1024 });
    for (let s = 61n; s <= 80n; s++) w2.append(writeRec(s, 1500));
    await w2.close();
    const recs = await collect(d);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 80 }, (_, i) => BigInt(i + 1)));
    expect(recs.every(checkRec)).toBe(true);
    const rep = await verifyJournal(d);
    expect(rep.corruptions).toEqual([]);
    expect(rep.tornTail).toBeUndefined();
  });
});
