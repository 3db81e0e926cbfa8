import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CollectorStore } from '../collector/store/index.js';
import { RecordKind, type JournalRecord } from '../journal/record.js';
import type { ShipperStatus } from '../ship/shipper.js';
import { FileBackend } from '../nbd/file-backend.js';
import { countVolumeAppends, observeVolumeStatus, trackCollectorStore, trackNode } from './observe.js';
import { createRewindMetrics } from './rewind-metrics.js';
import { countWrites, trackWrites } from './write-counter.js';

function shipperStatus(over: Partial<ShipperStatus>): ShipperStatus {
  return { connected: true, ackedSeq: 0n, sentSeq: 0n, lastSeq: 0n, lagSeconds: 0, lagRecords: 0n, bytesSent: 0n, reconnects: 0, ...over };
}

describe('metrics observers', () => {
  it('export the node side from the spool and shipper at scrape time, counters only ever adding', async () => {
    const m = createRewindMetrics();
    const spool = { lastSeq: 120n, ackedSeq: 100n, bytes: 65536, state: 'blocked' };
    let st = shipperStatus({ ackedSeq: 100n, lagSeconds: 2.5, bytesSent: 4000n, reconnects: 2 });
    trackNode(m, 'pvc-n', spool, { status: () => st });
    let text = await m.render();
    expect(text).toContain('rewind_spool_depth_records{volume="pvc-n"} 20');
    expect(text).toContain('rewind_spool_depth_bytes{volume="pvc-n"} 65536');
    expect(text).toContain('rewind_spool_state{volume="pvc-n",state="blocked"} 1');
    expect(text).toContain('rewind_spool_state{volume="pvc-n",state="ok"} 0');
    expect(text).toContain('rewind_lag_seconds{volume="pvc-n",side="node"} 2.5');
    expect(text).toContain('rewind_shipper_reconnects_total{volume="pvc-n"} 2');
    expect(text).toContain('rewind_shipper_bytes_sent_total{volume="pvc-n"} 4000');
    st = shipperStatus({ ackedSeq: 120n, bytesSent: 6000n, reconnects: 3 });
    text = await m.render();
    expect(text).toContain('rewind_shipper_reconnects_total{volume="pvc-n"} 3');
    expect(text).toContain('rewind_shipper_bytes_sent_total{volume="pvc-n"} 6000');
    expect(text).toContain('rewind_durable_seq{volume="pvc-n"} 120');
  });

  it('computes collector lag from the latest durable time, and registries are independent', async () => {
    const a = createRewindMetrics();
    const b = createRewindMetrics();
    const now = 1_800_000_000_000;
    observeVolumeStatus(a, { name: 'v', durableSeq: 7n, latestTime: BigInt(now - 4000) * 1_000_000n, journalBytes: 10, checkpointBytes: 20 }, now);
    const text = await a.render();
    expect(text).toContain('rewind_lag_seconds{volume="v",side="collector"} 4');
    expect(text).toContain('rewind_durable_seq{volume="v"} 7');
    expect(await b.render()).not.toContain('volume="v"');
  });

  it('counts each appended entry once, also when a resend overlaps an append still in flight', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-metrics-'));
    const store = await CollectorStore.open(dir);
    try {
      const vol = await store.createVolume('mv', 64n * 1024n);
      const m = createRewindMetrics();
      countVolumeAppends(m, vol);
      const rec = (seq: number): JournalRecord => ({ kind: RecordKind.Write, flags: 0, seq: BigInt(seq), time: BigInt(seq) * 1000n, offset: 0n, length: 100, payload: Buffer.alloc(100, seq) });
      const a = vol.append([1, 2, 3, 4].map(rec));
      const b = vol.append([3, 4, 5, 6].map(rec)); // 3 and 4 again, before the first resolves
      expect(await Promise.all([a, b])).toEqual([4n, 6n]);
      await vol.append([5, 6].map(rec)); // a resend after both
      const text = await m.render();
      expect(text).toMatch(/entries_appended_total\{volume="mv"\} 6\n/);
      expect(text).toMatch(/bytes_appended_total\{volume="mv"\} 600\n/);
    } finally {
      await store.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('times restores and counts scrubs, ingest and fsyncs of a store, with the disk it lives on', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-metrics-'));
    const store = await CollectorStore.open(dir);
    const m = createRewindMetrics({ sides: ['collector'] });
    const untrack = trackCollectorStore(m, store);
    const again = trackCollectorStore(m, store); // the HTTP server asks too: still one tracking
    try {
      const vol = await store.createVolume('rv', 64n * 1024n);
      const t0 = BigInt(Date.now() - 10_000) * 1_000_000n;
      const rec = (seq: number): JournalRecord => ({ kind: RecordKind.Write, flags: 0, seq: BigInt(seq), time: t0 + BigInt(seq) * 1_000_000_000n, offset: 0n, length: 512, payload: Buffer.alloc(512, seq) });
      await vol.append([1, 2, 3].map(rec)); // appended before any scrape: still counted
      await vol.restore({ seq: 3n }, async () => undefined);
      await vol.restore({ seq: 3n }, async () => undefined, { changedSince: { seq: 1n } });
      await expect(vol.restore({ seq: 99n }, async () => undefined)).rejects.toThrow();
      expect((await vol.scrub()).ok).toBe(true);
      again();
      const text = await m.render();
      expect(text).toMatch(/entries_appended_total\{volume="rv"\} 3\n/);
      expect(text).toMatch(new RegExp(`collector_ingest_bytes_total ${3 * (512 + 48)}\\n`));
      expect(text).toContain('rewind_restores_total{volume="rv",kind="image",result="ok"} 1');
      expect(text).toContain('rewind_restores_total{volume="rv",kind="changed-blocks",result="ok"} 1');
      expect(text).toContain('rewind_restores_total{volume="rv",kind="image",result="error"} 1');
      expect(text).toContain('rewind_restore_duration_seconds_count{volume="rv",kind="image"} 1');
      expect(text).toContain('rewind_scrubs_total{volume="rv"} 1');
      expect(text).toContain('rewind_scrub_problems{volume="rv"} 0');
      expect(text).toMatch(/rewind_collector_fsync_duration_seconds_count [1-9]/);
      expect(text).toMatch(/rewind_collector_disk_free_bytes [1-9]/);
      expect(text).toContain('rewind_collector_volumes 1');
      // From the first entry (stamped before the collector heard of the volume) to the third.
      expect(text).toContain('rewind_restorable_window_seconds{volume="rv"} 2');
      expect(text).not.toContain('rewind_spool_depth_bytes');
      await store.deleteVolume('rv');
      expect(await m.render()).not.toContain('rewind_journal_bytes{volume="rv"}');
    } finally {
      untrack();
      await store.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('counts the NBD mutations that reach the volume, by op, and forwards each unchanged', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-metrics-'));
    const file = await FileBackend.open(path.join(dir, 'v.img'), { size: 1n << 20n });
    try {
      const { backend, counts } = countWrites(file);
      const m = createRewindMetrics({ sides: ['node'] });
      trackWrites(m, 'w', counts);
      await backend.pwrite(Buffer.alloc(4096, 1), 0n, { fua: false });
      await backend.pwrite(Buffer.alloc(512, 2), 8192n, { fua: true });
      await backend.trim(65536n, 4096, { fua: false });
      await backend.zero(131072n, 8192, { fua: false, noHole: false });
      const b = Buffer.alloc(512);
      await backend.pread(b, 8192n);
      expect(b[0]).toBe(2);
      const text = await m.render();
      expect(text).toContain('rewind_write_ops_total{volume="w",op="write"} 2');
      expect(text).toContain('rewind_write_bytes_total{volume="w",op="write"} 4608');
      expect(text).toContain('rewind_write_ops_total{volume="w",op="trim"} 1');
      expect(text).toContain('rewind_write_bytes_total{volume="w",op="zero"} 8192');
      expect(text).not.toContain('rewind_collector_disk_free_bytes');
    } finally {
      await file.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
