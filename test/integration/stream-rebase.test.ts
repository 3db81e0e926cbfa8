import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCollectorGrpc, type CollectorGrpcServer } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/index.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { RecordKind, type JournalRecord } from '../../src/journal/record.js';
import { Shipper } from '../../src/ship/shipper.js';
import { Spool } from '../../src/ship/spool.js';
import { waitFor } from '../helpers/stream-fixtures.js';

/**
 * A node crash can lose the spool's tail after the shipper already sent it from memory:
 * the collector then holds seqs the spool no longer has. The shipper must not reuse those
 * seqs (the collector would drop the new entries as resends); the spool continues after
 * the collector's seq and asks for a full resync.
 */
const SIZE = 1024 * 1024;
const TOKEN = 'rebase-token';

describe('a spool behind the collector after a node crash', () => {
  let dir: string;
  let store: CollectorStore;
  let server: CollectorGrpcServer;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-rebase-'));
    store = await CollectorStore.open(path.join(dir, 'collector'));
    server = await startCollectorGrpc({ store: storePort(store), listen: { path: path.join(dir, 'c.sock') }, allowPlaintext: true });
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('rebases the spool past the collector, requires a full resync, and ships new entries after it', async () => {
    // What the collector received before the crash: seqs 1..10.
    const vol = await store.createVolume('v', BigInt(SIZE), { token: TOKEN });
    const before: JournalRecord[] = [];
    for (let i = 1n; i <= 10n; i++) {
      before.push({ kind: RecordKind.Write, flags: 0, seq: i, time: 1_000_000n + i, offset: i * 512n, length: 512, payload: Buffer.alloc(512, Number(i)) });
    }
    expect(await vol.append(before)).toBe(10n);

    // The node restarts with a spool that only kept seqs 1..3.
    const spoolDir = path.join(dir, 'spool');
    let spool = await Spool.open(spoolDir, { volumeSize: BigInt(SIZE), maxBytes: 64 << 20, fullPolicy: 'block' });
    for (let i = 0; i < 3; i++) await spool.append({ kind: RecordKind.Write, flags: 0, offset: 0n, length: 512, payload: Buffer.alloc(512, 0xee) });
    await spool.sync();
    expect(spool.lastSeq).toBe(3n);
    await spool.close();
    spool = await Spool.open(spoolDir, { volumeSize: BigInt(SIZE), maxBytes: 64 << 20, fullPolicy: 'block' });
    expect(spool.needsFullResync).toBe(false);

    let rebasedTo: bigint | undefined;
    spool.on('rebased', (s: bigint) => (rebasedTo = s));
    const shipper = new Shipper({ spool, volume: 'v', size: BigInt(SIZE), token: TOKEN, target: { address: server.address, allowPlaintext: true }, mode: 'flush-sync' });
    shipper.start();
    try {
      await shipper.firstWelcome;
      expect(rebasedTo).toBe(10n);
      // Seq 11 is the resend-begin mark: the collector's copy is partial until the resync ends.
      expect(spool.lastSeq).toBe(11n);
      expect(spool.needsFullResync).toBe(true);
      const rec = await spool.append({ kind: RecordKind.Write, flags: 0, offset: 4096n, length: 512, payload: Buffer.alloc(512, 0x77) });
      expect(rec!.seq).toBe(12n);
      await shipper.waitDurable(12n, AbortSignal.timeout(10_000));
      await waitFor(() => vol.durableSeq === 12n, 5_000, 'collector durable seq 12');
      expect(vol.resolve({ seq: 10n }).seq).toBe(10n);
      expect(() => vol.resolve({ seq: 12n })).toThrow(expect.objectContaining({ code: ErrorCodes.POINT_NOT_EXACT }));
      // The old journal was set aside, not deleted.
      expect((await fsp.readdir(spoolDir)).some((n) => n.startsWith('journal.behind-'))).toBe(true);
    } finally {
      await shipper.stop();
      await spool.close();
    }
  });
});
