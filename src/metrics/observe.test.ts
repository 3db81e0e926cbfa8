import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CollectorStore } from '../collector/store/index.js';
import { RecordKind, type JournalRecord } from '../journal/record.js';
import type { ShipperStatus } from '../ship/shipper.js';
import { countVolumeAppends, observeVolumeStatus, trackNode } from './observe.js';
import { createRewindMetrics } from './rewind-metrics.js';

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
});
