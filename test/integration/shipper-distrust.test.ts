import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCollectorGrpc, type CollectorGrpcServer } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/index.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import type { AppendRequestMsg, AppendResponseMsg } from '../../src/rpc/messages.js';
import { loadProtos } from '../../src/rpc/proto.js';
import { openNodeVolume } from '../../src/ship/node-volume.js';
import { Shipper } from '../../src/ship/shipper.js';
import { Spool } from '../../src/ship/spool.js';
import { waitFor } from '../helpers/stream-fixtures.js';

/**
 * The shipper does not take the collector's word blindly (issue: "the shipper trusts the
 * collector"): an ack past what was sent completes no FLUSH, and a collector that lost
 * entries it had acknowledged gets the whole volume again, with the loss reported.
 */
const MiB = 1024 * 1024;
const TOKEN = 'distrust-token-0123456789';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the shipper checks what the collector claims', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-distrust-'));
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('an ack beyond what was sent releases no FLUSH waiter and reopens the stream', async () => {
    // A collector that welcomes at 0 and at once acknowledges seq 1000.
    const { collector } = loadProtos();
    const server = new grpc.Server();
    let hellos = 0;
    server.addService(collector.service, {
      Append: (call: grpc.ServerDuplexStream<AppendRequestMsg, AppendResponseMsg>) => {
        call.on('data', (m: AppendRequestMsg) => {
          if (m.msg !== 'hello') return;
          hellos++;
          call.write({ msg: 'welcome', welcome: { durable_seq: '0', generation: '1' } });
          call.write({ msg: 'ack', ack: { durable_seq: '1000' } });
        });
        call.on('error', () => undefined);
      },
    });
    const sock = path.join(dir, 'liar.sock');
    await new Promise<void>((res, rej) => server.bindAsync(`unix:${sock}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    const spool = await Spool.open(path.join(dir, 'liar-spool'), { volumeSize: BigInt(MiB), maxBytes: 8 * MiB, fullPolicy: 'block' });
    const rec = await spool.append({ kind: 1, flags: 0, offset: 0n, length: 4096, payload: randomBytes(4096) });
    const shipper = new Shipper({ spool, volume: 'v', size: BigInt(MiB), token: TOKEN, target: { address: `unix:${sock}`, allowPlaintext: true }, backoff: { initialMs: 50, maxMs: 200 } });
    shipper.start();
    try {
      let released = false;
      const waiting = shipper.waitDurable(rec!.seq).then(() => (released = true), () => undefined);
      await waitFor(() => hellos >= 2, 10_000, 'the shipper to reconnect after the bad ack');
      expect(released).toBe(false);
      expect(shipper.status().ackedSeq).toBe(0n);
      expect(shipper.status().lastError?.code).toBe(ErrorCodes.PROTOCOL);
      expect(shipper.status().problem?.reason).toBe('CollectorAckedUnsent');
      void waiting;
    } finally {
      await shipper.stop();
      await spool.close();
      server.forceShutdown();
    }
  });

  it('a collector that lost acknowledged entries gets the whole volume again, and the node says so', async () => {
    const root = path.join(dir, 'lost');
    const size = 8 * MiB;
    const start = async (sub: string) => {
      const store = await CollectorStore.open(path.join(root, sub));
      const server = await startCollectorGrpc({ store: storePort(store), listen: { path: path.join(root, `${sub}.sock`) }, allowPlaintext: true });
      return { store, server, target: { address: server.address, allowPlaintext: true } };
    };
    await fsp.mkdir(root, { recursive: true });
    let c: { store: CollectorStore; server: CollectorGrpcServer; target: { address: string; allowPlaintext: boolean } } = await start('disk-a');
    await c.store.createVolume('v', BigInt(size), { token: TOKEN });
    const open = () => openNodeVolume({
      name: 'v', backingPath: path.join(root, 'vol.img'), size: BigInt(size), spoolDir: path.join(root, 'spool'),
      spoolMaxBytes: 4 * MiB, fullPolicy: 'block', mode: 'flush-sync', collector: { target: c.target, token: TOKEN }, connectTimeoutMs: 5_000,
    });
    let vol = await open();
    // Enough writes that acknowledged segments are freed from the spool.
    for (let i = 0; i < 6; i++) {
      await vol.backend.pwrite(randomBytes(MiB), BigInt(i * MiB), { fua: false });
      await vol.backend.flush();
    }
    await vol.resynced;
    expect(vol.spool.firstSeq).toBeGreaterThan(1n);
    await vol.close();
    await c.server.close();
    await c.store.close();

    // The collector comes back from an older disk: it knows the volume, but none of its history.
    c = await start('disk-b');
    await c.store.createVolume('v', BigInt(size), { token: TOKEN });
    vol = await open();
    try {
      await waitFor(() => vol.shipper!.status().problem?.reason === 'CollectorLostAcknowledged', 10_000, 'the loss to be reported');
      await vol.resynced;
      await vol.backend.flush();
      const device = Buffer.alloc(size);
      await vol.backend.pread(device, 0n);
      const api = new CollectorApi(c.target);
      try {
        await waitFor(async () => (await api.status('v', TOKEN)).durableSeq >= vol.spool.lastSeq, 20_000, 'the resync to be acknowledged');
        // The collector's volume status carries the node's problem (the ProtectedVolume's Degraded reason).
        await waitFor(async () => ((await api.status('v', TOKEN)).detail.writer as { problem?: string } | undefined)?.problem === 'CollectorLostAcknowledged', 5_000, 'the problem in the volume status');
        const out = path.join(root, 'now.img');
        await api.restoreToFile('v', TOKEN, { now: true }, out);
        expect(sha(await fsp.readFile(out))).toBe(sha(device));
      } finally {
        api.close();
      }
    } finally {
      await vol.close();
      await c.server.close();
      await c.store.close();
    }
  });
});
