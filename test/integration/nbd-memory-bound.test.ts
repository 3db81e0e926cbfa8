import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/nbd/backend.js';
import * as C from '../../src/nbd/constants.js';
import { ExportRegistry } from '../../src/nbd/export-registry.js';
import { FileBackend } from '../../src/nbd/file-backend.js';
import { DEFAULT_MEMORY_BUDGET, nbdMemory } from '../../src/nbd/memory-budget.js';
import { createNbdServer, type NbdServer } from '../../src/nbd/server.js';
import { RawClient, requestHeader } from '../helpers/nbd-raw-client.js';

/**
 * Hostile clients on raw sockets against the process-wide bound on request memory
 * (src/nbd/memory-budget.ts): many connections each asking for far more than the bound —
 * READs whose replies they never read, WRITEs to a backend that never settles — must not
 * make the server hold more than the bound; past it requests wait, and once the clients
 * behave every request gets its right reply.
 *
 * Memory is measured as process.memoryUsage().arrayBuffers (Buffer memory of this process,
 * where the server runs). The clients' own memory is kept out of it: they send headers
 * and one shared payload Buffer, and paused sockets leave replies in the kernel.
 */
const MiB = 1 << 20;
const SIZE = 64 * MiB;
const CONNECTIONS = 12;
const PER_CONNECTION = 100;
/** The default bound plus slack: 128 KiB read buffers, queues. */
const BOUND = DEFAULT_MEMORY_BUDGET;
const SLACK = 48 * MiB;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const arrayBuffers = () => process.memoryUsage().arrayBuffers;

/** Every reservation is given back once the clients are gone. */
async function allReleased(): Promise<void> {
  for (let i = 0; i < 100 && nbdMemory.held > 0; i++) await sleep(20);
  expect(nbdMemory.held).toBe(0);
  expect(nbdMemory.waiting).toBe(0);
}

/** Sample arrayBuffers until it has not grown for `quietMs`; returns the peak seen. */
async function peakWhileGrowing(quietMs = 600, maxMs = 15_000): Promise<number> {
  let peak = arrayBuffers();
  let lastGrowth = Date.now();
  const start = Date.now();
  while (Date.now() - lastGrowth < quietMs && Date.now() - start < maxMs) {
    await sleep(20);
    const now = arrayBuffers();
    if (now > peak + MiB) lastGrowth = Date.now();
    if (now > peak) peak = now;
  }
  return peak;
}

describe('NBD request memory is bounded process-wide against hostile clients', () => {
  let dir: string;
  const servers: NbdServer[] = [];
  const backends: FileBackend[] = [];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-nbd-mem-'));
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    for (const b of backends) await b.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function serve(backend: Backend, payloadStallMs?: number): Promise<number> {
    const server = createNbdServer({ exports: new ExportRegistry().add('', backend), maxConnections: 64, ...(payloadStallMs !== undefined ? { payloadStallMs } : {}) });
    servers.push(server);
    return ((await server.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo).port;
  }

  it('holds READ buffers of clients that never read their replies within the bound; the rest wait and are answered right', async () => {
    const file = await FileBackend.open(path.join(dir, 'read.img'), { size: SIZE });
    backends.push(file);
    // Each MiB of the export holds its own byte, so every reply can be checked.
    for (let m = 0; m < SIZE / MiB; m++) await file.pwrite(Buffer.alloc(MiB, m + 1), BigInt(m * MiB), { fua: false });
    const port = await serve(file);

    const clients: RawClient[] = [];
    for (let k = 0; k < CONNECTIONS; k++) {
      const c = await RawClient.connect(port);
      await c.go();
      c.sock.pause(); // never reads a reply (until the end)
      clients.push(c);
    }
    global.gc?.();
    const before = arrayBuffers();
    for (const [k, c] of clients.entries()) {
      const headers: Buffer[] = [];
      for (let i = 0; i < PER_CONNECTION; i++) headers.push(requestHeader(C.NBD_CMD_READ, ((k * 7 + i) % 64) * MiB, MiB, i + 1));
      c.sock.write(Buffer.concat(headers));
    }
    const peak = await peakWhileGrowing();
    const held = peak - before;
    console.log(`READ flood: ${CONNECTIONS}×${PER_CONNECTION} MiB asked, ${(held / MiB).toFixed(0)} MiB held at peak (bound ${BOUND / MiB} MiB)`);
    expect(held).toBeLessThan(BOUND + SLACK);

    // A well-behaved client meanwhile: its read waits for memory (no error, no early reply).
    const good = await RawClient.connect(port);
    await good.go();
    good.request(C.NBD_CMD_READ, 5 * MiB, 4096, 77);
    const goodReply = good.simpleReply();
    const early = await Promise.race([goodReply.then(() => 'replied'), sleep(300).then(() => 'waiting')]);
    expect(early).toBe('waiting');

    // The hostile clients now read: every reply is whole, in its place, with the right data.
    const expected = Array.from({ length: 64 }, (_, m) => Buffer.alloc(MiB, m + 1));
    await Promise.all(clients.map(async (c, k) => {
      c.sock.resume();
      const seen = new Set<number>();
      for (let i = 0; i < PER_CONNECTION; i++) {
        const r = await c.simpleReply();
        expect(r.error).toBe(0);
        const data = await c.reader.read(MiB);
        const region = (k * 7 + r.handle - 1) % 64;
        expect(data.equals(expected[region]!)).toBe(true);
        seen.add(r.handle);
      }
      expect(seen.size).toBe(PER_CONNECTION);
    }));
    expect(await goodReply).toEqual({ error: 0, handle: 77 });
    expect((await good.reader.read(4096)).every((b) => b === 6)).toBe(true);
    expect(nbdMemory.peak).toBeLessThanOrEqual(nbdMemory.limit);
    for (const c of [...clients, good]) c.destroy();
    await allReleased();
  });

  it('holds WRITE payloads for a backend that does not settle within the bound; all land once it does', async () => {
    const file = await FileBackend.open(path.join(dir, 'write.img'), { size: SIZE });
    backends.push(file);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const stalled: Backend = {
      get size() { return file.size; },
      capabilities: file.capabilities,
      blockSizes: file.blockSizes,
      borrowsWriteBuffers: true,
      pread: (b, o) => file.pread(b, o),
      pwrite: async (b, o, opts) => {
        await gate;
        return file.pwrite(b, o, opts);
      },
      flush: () => file.flush(),
      trim: (o, l, opts) => file.trim(o, l, opts),
      zero: (o, l, opts) => file.zero(o, l, opts),
      blockStatus: (o, l) => file.blockStatus(o, l),
      cache: (o, l) => file.cache(o, l),
      close: async () => undefined,
    };
    const port = await serve(stalled);
    const clients: RawClient[] = [];
    const payloads = Array.from({ length: CONNECTIONS }, (_, k) => Buffer.alloc(MiB, 0xa0 + k));
    for (let k = 0; k < CONNECTIONS; k++) {
      const c = await RawClient.connect(port);
      await c.go();
      clients.push(c);
    }
    global.gc?.();
    const before = arrayBuffers();
    for (const [k, c] of clients.entries()) {
      // The same payload Buffer each time: the client holds 1 MiB, not 100.
      for (let i = 0; i < PER_CONNECTION; i++) {
        c.sock.write(requestHeader(C.NBD_CMD_WRITE, k * MiB, MiB, i + 1));
        c.sock.write(payloads[k]!);
      }
    }
    const peak = await peakWhileGrowing();
    const held = peak - before;
    console.log(`WRITE flood: ${CONNECTIONS}×${PER_CONNECTION} MiB sent, ${(held / MiB).toFixed(0)} MiB held at peak (bound ${BOUND / MiB} MiB)`);
    expect(held).toBeLessThan(BOUND + SLACK);

    open();
    await Promise.all(clients.map(async (c) => {
      const seen = new Set<number>();
      for (let i = 0; i < PER_CONNECTION; i++) {
        const r = await c.simpleReply();
        expect(r.error).toBe(0);
        seen.add(r.handle);
      }
      expect(seen.size).toBe(PER_CONNECTION);
    }));
    const check = await RawClient.connect(port);
    await check.go();
    for (let k = 0; k < CONNECTIONS; k++) {
      check.request(C.NBD_CMD_READ, k * MiB, MiB, 1000 + k);
      expect(await check.simpleReply()).toEqual({ error: 0, handle: 1000 + k });
      expect((await check.reader.read(MiB)).equals(payloads[k]!)).toBe(true);
    }
    expect(nbdMemory.peak).toBeLessThanOrEqual(nbdMemory.limit);
    for (const c of [...clients, check]) c.destroy();
    await allReleased();
  });

  it('gives back the memory of clients that go away with requests queued, in flight or half sent', async () => {
    const file = await FileBackend.open(path.join(dir, 'gone.img'), { size: SIZE });
    backends.push(file);
    const port = await serve(file);
    for (let k = 0; k < 6; k++) {
      const c = await RawClient.connect(port);
      await c.go(k % 2 === 1);
      c.sock.pause();
      const reqs: Buffer[] = [];
      for (let i = 0; i < 80; i++) reqs.push(requestHeader(C.NBD_CMD_READ, (i % 64) * MiB, MiB, i + 1));
      reqs.push(requestHeader(C.NBD_CMD_WRITE, 0, 4 * MiB, 999), Buffer.alloc(1000)); // half a payload
      c.sock.write(Buffer.concat(reqs));
      await sleep(100);
      c.destroy();
    }
    await allReleased();
  });

  it('closes a connection whose WRITE payload stops coming, giving its memory back, and keeps one that sends slowly', async () => {
    const file = await FileBackend.open(path.join(dir, 'stall.img'), { size: SIZE });
    backends.push(file);
    const port = await serve(file, 400);
    // Headers alone (and a few bytes) would hold 32 MiB each of the bound for good.
    const stalled: RawClient[] = [];
    for (let k = 0; k < 9; k++) {
      const c = await RawClient.connect(port);
      await c.go();
      c.sock.write(Buffer.concat([requestHeader(C.NBD_CMD_WRITE, 0, C.MAX_REQUEST_PAYLOAD, 1), Buffer.alloc(1000)]));
      stalled.push(c);
    }
    // A slow but steady writer: 4 MiB in 64 KiB pieces every 50 ms (3.2 s in all).
    const slow = await RawClient.connect(port);
    await slow.go();
    slow.sock.write(requestHeader(C.NBD_CMD_WRITE, 8 * MiB, 4 * MiB, 2));
    const piece = Buffer.alloc(64 * 1024, 0x3c);
    for (let i = 0; i < 64; i++) {
      slow.sock.write(piece);
      await sleep(50);
    }
    expect(await slow.simpleReply()).toEqual({ error: 0, handle: 2 });
    await Promise.all(stalled.map((c) => c.closed));
    slow.request(C.NBD_CMD_READ, 8 * MiB, 4 * MiB, 3);
    expect(await slow.simpleReply()).toEqual({ error: 0, handle: 3 });
    expect((await slow.reader.read(4 * MiB)).every((b) => b === 0x3c)).toBe(true);
    slow.destroy();
    await allReleased();
  });
});
