import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HybridClock } from '../../core/hlc.js';
import { RecordKind, type JournalRecord } from '../../journal/record.js';
import { CollectorStore } from './collector-store.js';

/** A volume younger than its retention window has nothing to consolidate: no error. */
describe('retention on a volume younger than its window', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('applyRetention on a fresh volume with a day of window resolves and keeps everything', async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-young-'));
    const day = 86_400_000_000_000n;
    const store = await CollectorStore.open(dir, { retention: { pointInTimeNs: day, marksNs: 7n * day } });
    try {
      const v = await store.createVolume('v', 1n << 20n, { token: 't' });
      const clock = new HybridClock();
      const recs: JournalRecord[] = [1n, 2n, 3n].map((seq) => ({ kind: RecordKind.Write, flags: 0, seq, time: clock.now(), offset: 0n, length: 4096, payload: Buffer.alloc(4096, Number(seq)) }));
      await v.append(recs);
      const before = v.status();
      await expect(v.applyRetention(BigInt(Date.now()) * 1_000_000n)).resolves.toMatchObject({ freedBytes: 0 });
      expect(v.status().window).toEqual(before.window);
      expect(v.durableSeq).toBe(3n);
    } finally {
      await store.close();
    }
  });
});
