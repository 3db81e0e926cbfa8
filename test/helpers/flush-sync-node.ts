import crypto from 'node:crypto';
import path from 'node:path';
import { ExportRegistry } from '../../src/nbd/export-registry.js';
import { createNbdServer } from '../../src/nbd/server.js';
import { openNodeVolume, type NodeVolume } from '../../src/ship/node-volume.js';
import { nbdUri, qemuIo } from './nbd-peers.js';

export const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/**
 * The node side as `rewind up` assembles it (journal filter, spool, shipper in flush-sync
 * mode) behind our NBD server on a unix socket in `dir`, shipping to a collector on
 * 127.0.0.1:`collectorPort` — for tests that run the collector in a process of their own.
 */
export async function startFlushSyncNode(o: { dir: string; size: number; collectorPort: number; token: string; spoolMaxBytes: number }): Promise<{ vol: NodeVolume; uri: string; close(): Promise<void> }> {
  const vol = await openNodeVolume({
    name: 'vol',
    backingPath: path.join(o.dir, 'vol.img'),
    size: BigInt(o.size),
    spoolDir: path.join(o.dir, 'spool'),
    spoolMaxBytes: o.spoolMaxBytes,
    fullPolicy: 'block',
    mode: 'flush-sync',
    collector: { target: { address: `127.0.0.1:${o.collectorPort}`, allowPlaintext: true }, token: o.token },
  });
  const server = createNbdServer({ exports: new ExportRegistry().add('', vol.backend) });
  const sock = path.join(o.dir, 'nbd.sock');
  await server.listen({ path: sock });
  let closed = false;
  return {
    vol,
    uri: nbdUri({ path: sock }),
    async close() {
      if (closed) return;
      closed = true;
      await server.close();
      await vol.close();
    },
  };
}

export interface FlushStep { startedAt: number; doneAt: number; time: bigint; region: string }

/**
 * qemu-io, one process per step, writes a pattern of `step` bytes into [0, region) and
 * FLUSHes; a step is completed when qemu-io has exited. Each completed step records the
 * instant after it and the sha256 of the region as it must then be.
 */
export function writeFlushSteps(uri: string, region: number, step: number): { steps: FlushStep[]; stop(): Promise<void> } {
  const model = Buffer.alloc(region);
  const steps: FlushStep[] = [];
  let stopped = false;
  const done = (async () => {
    for (let i = 0; !stopped && i < 10_000; i++) {
      const off = (i * step) % region;
      const pattern = (i % 250) + 1;
      const startedAt = Date.now();
      await qemuIo(uri, [`write -P ${pattern} ${off} ${step}`, 'flush']);
      model.fill(pattern, off, off + step);
      steps.push({ startedAt, doneAt: Date.now(), time: BigInt(Date.now()) * 1_000_000n, region: sha(model) });
    }
  })();
  return {
    steps,
    async stop() {
      stopped = true;
      await done;
    },
  };
}
