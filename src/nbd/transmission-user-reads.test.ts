import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, requestHeader as header } from '../../test/helpers/nbd-raw-client.js';
import type { Backend } from './backend.js';
import * as C from './constants.js';
import { ExportRegistry } from './export-registry.js';
import { FileBackend } from './file-backend.js';
import { createNbdServer, type NbdServer } from './server.js';
import { nbdMemory } from './memory-budget.js';

const SIZE = 320 << 20; // room for nine 32 MiB writes side by side

/** FileBackend, recording the memory each WRITE payload arrived in. */
function recording(inner: FileBackend, borrows: boolean): Backend & { payloads: Buffer[] } {
  const payloads: Buffer[] = [];
  return {
    payloads,
    get size() {
      return inner.size;
    },
    capabilities: inner.capabilities,
    blockSizes: inner.blockSizes,
    ...(borrows ? { borrowsWriteBuffers: true } : {}),
    pread: (b, o) => inner.pread(b, o),
    pwrite: async (b, o, opts) => {
      payloads.push(b);
      // Settle later than the next requests arrive, so buffers are in flight together.
      await new Promise((r) => setTimeout(r, 2));
      return inner.pwrite(b, o, opts);
    },
    flush: () => inner.flush(),
    trim: (o, l, opts) => inner.trim(o, l, opts),
    zero: (o, l, opts) => inner.zero(o, l, opts),
    blockStatus: (o, l) => inner.blockStatus(o, l),
    cache: (o, l) => inner.cache(o, l),
    close: () => inner.close(),
  };
}

/** Send `bytes` in pieces of random size, pausing between some, so reads split anywhere. */
async function sendSplit(c: RawClient, bytes: Buffer, rnd: () => number): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(bytes.length - at, 1 + Math.floor(rnd() * 200_000));
    c.sock.write(bytes.subarray(at, at + n));
    at += n;
    if (rnd() < 0.3) await new Promise((r) => setTimeout(r, 1));
  }
}

function seeded(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('transmission reading into its own buffers (user-buffer reads)', () => {
  let dir: string;
  const servers: NbdServer[] = [];
  const backends: FileBackend[] = [];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rewind-ubr-'));
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    for (const b of backends) await b.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function serve(name: string, borrows: boolean, unix: boolean): Promise<{ where: number | string; backend: ReturnType<typeof recording> }> {
    const file = await FileBackend.open(path.join(dir, `${name}.img`), { size: BigInt(SIZE) });
    backends.push(file);
    const backend = recording(file, borrows);
    const server = createNbdServer({ exports: new ExportRegistry().add('', backend) });
    servers.push(server);
    const sock = path.join(dir, `${name}.sock`);
    const a = await server.listen(unix ? { path: sock } : { host: '127.0.0.1', port: 0 });
    return { where: unix ? sock : (a as AddressInfo).port, backend };
  }

  /** Writes of many sizes split at random points, read back and compared. */
  async function roundTrip(where: number | string, seed: number): Promise<Array<{ offset: number; data: Buffer }>> {
    const rnd = seeded(seed);
    const c = await RawClient.connect(where);
    await c.go();
    const sizes = [1, 511, 4096, 28, 65536, 300_001, 1 << 20, 4096, 2 << 20, 17, 1 << 20, 123_457];
    const writes = sizes.map((n, i) => ({ offset: i * (3 << 20) + (i % 3), data: crypto.randomBytes(n) }));
    const stream = Buffer.concat(writes.flatMap((w, i) => [header(C.NBD_CMD_WRITE, w.offset, w.data.length, 100 + i), w.data]));
    await sendSplit(c, stream, rnd);
    const done = new Set<number>();
    for (let i = 0; i < writes.length; i++) {
      const r = await c.simpleReply();
      expect(r.error).toBe(0);
      done.add(r.handle);
    }
    expect(done.size).toBe(writes.length);
    for (const [i, w] of writes.entries()) {
      c.request(C.NBD_CMD_READ, w.offset, w.data.length, 500 + i);
      const r = await c.simpleReply();
      expect(r).toEqual({ error: 0, handle: 500 + i });
      expect((await c.reader.read(w.data.length)).equals(w.data)).toBe(true);
    }
    c.destroy();
    return writes;
  }

  it('gathers payloads split anywhere over TCP and unix sockets, and reuses the memory of settled writes', async () => {
    // Each handle.useUserBuffer call stacks a native listener on the socket until it closes:
    // reads are pointed through Node's generator instead, so one call per connection.
    const probe = net.connect({ port: 9, host: '127.0.0.1' });
    probe.on('error', () => undefined);
    const handles = [Object.getPrototypeOf((probe as unknown as { _handle: object })._handle), Object.getPrototypeOf((net.connect(path.join(dir, 'none.sock')).on('error', () => undefined) as unknown as { _handle: object })._handle)];
    probe.destroy();
    let calls = 0;
    const originals = handles.map((h: { useUserBuffer: (b: Buffer) => void }) => h.useUserBuffer);
    handles.forEach((h: { useUserBuffer: (b: Buffer) => void }, i) => {
      h.useUserBuffer = function (this: unknown, b: Buffer) {
        calls++;
        return originals[i]!.call(this, b);
      };
    });
    try {
      await gatherAndReuse();
    } finally {
      handles.forEach((h: { useUserBuffer: (b: Buffer) => void }, i) => (h.useUserBuffer = originals[i]!));
    }
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThanOrEqual(4); // two connections per socket kind
  });

  async function gatherAndReuse(): Promise<void> {
    for (const unix of [false, true]) {
      const { where, backend } = await serve(unix ? 'borrow-unix' : 'borrow-tcp', true, unix);
      await roundTrip(where, unix ? 7 : 3);
      await roundTrip(where, unix ? 8 : 4);
      // Pool memory: each payload at the start of a power-of-two buffer of its own...
      for (const p of backend.payloads) {
        expect(p.byteOffset).toBe(0);
        const size = p.buffer.byteLength;
        expect(size >= 4096 && (size & (size - 1)) === 0).toBe(true);
      }
      // ...handed out again once a write settled: the second round used no new memory
      // for sizes the first round had.
      const first = new Set(backend.payloads.slice(0, 12).map((p) => p.buffer));
      const again = backend.payloads.slice(12).filter((p) => first.has(p.buffer));
      expect(again.length).toBeGreaterThan(0);
    }
  }

  it('never reuses a payload buffer the backend may keep', async () => {
    const { where, backend } = await serve('keep', false, false);
    const writes = await roundTrip(where, 11);
    expect(backend.payloads.length).toBe(writes.length);
    for (const [i, w] of writes.entries()) expect(backend.payloads[i]!.equals(w.data)).toBe(true);
    const more = await roundTrip(where, 12);
    for (const [i, w] of writes.entries()) expect(backend.payloads[i]!.equals(w.data)).toBe(true);
    for (const [i, w] of more.entries()) expect(backend.payloads[writes.length + i]!.equals(w.data)).toBe(true);
  });

  it('stops reading at the in-flight bound, keeps what it had read, and goes on when writes settle', async () => {
    const file = await FileBackend.open(path.join(dir, 'pause.img'), { size: BigInt(SIZE) });
    backends.push(file);
    let gate!: () => void;
    const opened = new Promise<void>((r) => (gate = r));
    let started = 0;
    const backend: Backend = {
      ...recording(file, true),
      pwrite: async (b, o, opts) => {
        started++;
        await opened; // nothing settles until the test opens the gate
        return file.pwrite(b, o, opts);
      },
    };
    const server = createNbdServer({ exports: new ExportRegistry().add('', backend) });
    servers.push(server);
    const port = ((await server.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo).port;
    const c = await RawClient.connect(port);
    await c.go();
    const n = C.MAX_INFLIGHT_REQUESTS + 200;
    const writes = Array.from({ length: n }, (_, i) => ({ offset: i * 32768, data: crypto.randomBytes(i % 3 === 0 ? 20_000 : 4096) }));
    c.sock.write(Buffer.concat(writes.flatMap((w, i) => [header(C.NBD_CMD_WRITE, w.offset, w.data.length, i + 1), w.data])));
    await new Promise((r) => setTimeout(r, 200));
    // Paused at the bound: the rest waits in the socket or, copied, in the queue.
    expect(started).toBe(C.MAX_INFLIGHT_REQUESTS);
    gate();
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) {
      const r = await c.simpleReply();
      expect(r.error).toBe(0);
      seen.add(r.handle);
    }
    expect(seen.size).toBe(n);
    for (const [i, w] of writes.entries()) {
      c.request(C.NBD_CMD_READ, w.offset, w.data.length, 10_000 + i);
      expect(await c.simpleReply()).toEqual({ error: 0, handle: 10_000 + i });
      expect((await c.reader.read(w.data.length)).equals(w.data)).toBe(true);
    }
    c.destroy();
  });

  it('reserves memory for a payload announced by a header before it comes; one that does not fit waits, then lands', async () => {
    const { where } = await serve('announce', true, false);
    const big = C.MAX_REQUEST_PAYLOAD;
    const clients: RawClient[] = [];
    // Nine 32 MiB payloads announced (and barely begun) are more than the 256 MiB bound.
    for (let i = 0; i < 9; i++) {
      const c = await RawClient.connect(where);
      await c.go();
      c.sock.write(Buffer.concat([header(C.NBD_CMD_WRITE, i * big, big, 1), Buffer.alloc(10, i)]));
      clients.push(c);
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(nbdMemory.held).toBeGreaterThan(6 * big);
    expect(nbdMemory.held).toBeLessThanOrEqual(nbdMemory.limit);
    expect(nbdMemory.waiting).toBeGreaterThanOrEqual(1);
    // Every payload then arrives: the waiting one is served once another write is done.
    for (const [i, c] of clients.entries()) c.sock.write(Buffer.alloc(big - 10, 0x70 + i));
    for (const c of clients) expect(await c.simpleReply()).toEqual({ error: 0, handle: 1 });
    const last = clients[clients.length - 1]!;
    last.request(C.NBD_CMD_READ, 9 * big - 4096, 4096, 2);
    expect(await last.simpleReply()).toEqual({ error: 0, handle: 2 });
    expect((await last.reader.read(4096)).every((b) => b === 0x78)).toBe(true);
    for (const c of clients) c.destroy();
    await Promise.all(clients.map((c) => c.closed));
    await new Promise((r) => setTimeout(r, 50));
    expect(nbdMemory.held).toBe(0);
  });
});
