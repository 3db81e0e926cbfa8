import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNbdServer, type NbdServer } from '../../src/nbd/server.js';
import { ExportRegistry } from '../../src/nbd/export-registry.js';
import { FileBackend } from '../../src/nbd/file-backend.js';
import * as C from '../../src/nbd/constants.js';
import { RawClient, requestHeader } from '../helpers/nbd-raw-client.js';
import { makeTempDir, nbdUri, qemuIo, requirePeer, runPeer } from '../helpers/nbd-peers.js';

const SIZE = 64 * 1024 * 1024;

describe('NBD server against malformed and hostile input on a raw socket', () => {
  let dir: string;
  let server: NbdServer;
  let backend: FileBackend;
  let port: number;
  let uri: string;

  /** After every hostile case, a real client must still be served. */
  const stillServes = async (): Promise<void> => {
    await qemuIo(uri, ['read -P 0x42 0 4096']);
  };

  beforeAll(async () => {
    requirePeer('qemu-io');
    dir = makeTempDir();
    backend = await FileBackend.open(path.join(dir, 'raw.img'), { size: SIZE });
    server = createNbdServer({ exports: new ExportRegistry().add('', backend), handshakeTimeoutMs: 3000, maxConnections: 400 });
    const a = await server.listen({ host: '127.0.0.1', port: 0 });
    port = (a as net.AddressInfo).port;
    uri = nbdUri({ host: '127.0.0.1', port });
    await qemuIo(uri, ['write -P 0x42 0 4096']);
  });

  afterAll(async () => {
    await server?.close();
    await backend?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('closes the connection on an option without IHAVEOPT magic', async () => {
    const c = await RawClient.connect(port);
    c.sock.write(Buffer.alloc(16, 0x55));
    await c.closed;
    await stillServes();
  });

  it('drains an unknown option with payload, replies NBD_REP_ERR_UNSUP, and stays framed', async () => {
    const c = await RawClient.connect(port);
    c.sendOption(0x7777, Buffer.alloc(1000, 0xaa));
    const r = await c.optionReply();
    expect(r.option).toBe(0x7777);
    expect(r.type).toBe(C.NBD_REP_ERR_UNSUP);
    c.sendOption(C.NBD_OPT_LIST, Buffer.alloc(0));
    const s = await c.optionReply();
    expect(s.type).toBe(C.NBD_REP_SERVER);
    expect((await c.optionReply()).type).toBe(C.NBD_REP_ACK);
    c.destroy();
    await stillServes();
  });

  it('answers an oversized option with NBD_REP_ERR_TOO_BIG, draining it when bounded and closing when not', async () => {
    const c = await RawClient.connect(port);
    c.sendOption(C.NBD_OPT_INFO, Buffer.alloc(200 * 1024), 200 * 1024);
    expect((await c.optionReply()).type).toBe(C.NBD_REP_ERR_TOO_BIG);
    await c.go(); // still framed
    c.destroy();
    const d = await RawClient.connect(port);
    d.sendOption(C.NBD_OPT_INFO, Buffer.alloc(0), 0xfffffff0);
    expect((await d.optionReply()).type).toBe(C.NBD_REP_ERR_TOO_BIG);
    await d.closed;
    await stillServes();
  });

  it('refuses out-of-range, zero-length and unknown requests with the spec errno and stays framed', async () => {
    const c = await RawClient.connect(port);
    await c.go();
    c.request(C.NBD_CMD_READ, SIZE - 100, 200, 1);
    expect(await c.simpleReply()).toEqual({ error: C.NBD_EINVAL, handle: 1 });
    c.request(C.NBD_CMD_WRITE, SIZE - 100, 200, 2, 0, Buffer.alloc(200));
    expect(await c.simpleReply()).toEqual({ error: C.NBD_ENOSPC, handle: 2 });
    c.request(C.NBD_CMD_READ, 0, 0, 3);
    expect(await c.simpleReply()).toEqual({ error: C.NBD_EINVAL, handle: 3 });
    c.request(99, 0, 4096, 4);
    expect(await c.simpleReply()).toEqual({ error: C.NBD_EINVAL, handle: 4 });
    c.request(C.NBD_CMD_READ, 0, 4096, 5, 0x4000); // unknown flag
    expect(await c.simpleReply()).toEqual({ error: C.NBD_EINVAL, handle: 5 });
    c.request(C.NBD_CMD_BLOCK_STATUS, 0, 4096, 6); // no meta context negotiated
    expect(await c.simpleReply()).toEqual({ error: C.NBD_EINVAL, handle: 6 });
    c.request(C.NBD_CMD_READ, 0, 4096, 7);
    expect(await c.simpleReply()).toEqual({ error: 0, handle: 7 });
    const data = await c.reader.read(4096);
    expect(data.every((b) => b === 0x42)).toBe(true);
    c.request(C.NBD_CMD_DISC, 0, 0, 8);
    await c.closed;
    await stillServes();
  });

  it('replies to every request sent before DISC, then closes', async () => {
    const c = await RawClient.connect(port);
    await c.go();
    // Writes, a read and a flush still in flight when DISC arrives, all in one packet.
    const h = requestHeader;
    c.sock.write(Buffer.concat([
      h(C.NBD_CMD_WRITE, 1 << 20, 4096, 11), Buffer.alloc(4096, 0x5a),
      h(C.NBD_CMD_WRITE, 2 << 20, 256 * 1024, 12), Buffer.alloc(256 * 1024, 0x5b),
      h(C.NBD_CMD_FLUSH, 0, 0, 13),
      h(C.NBD_CMD_DISC, 0, 0, 14),
    ]));
    const handles: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await c.simpleReply();
      expect(r.error).toBe(0);
      handles.push(r.handle);
    }
    expect(handles.sort()).toEqual([11, 12, 13]);
    await c.closed;
    await qemuIo(uri, ['read -P 0x5a 1M 4k', 'read -P 0x5b 2M 256k']);
  });

  it('answers over-long READ and WRITE with EOVERFLOW, discarding the write payload, and stays framed', async () => {
    const c = await RawClient.connect(port);
    await c.go();
    const big = C.MAX_REQUEST_PAYLOAD + 4096;
    c.request(C.NBD_CMD_READ, 0, big, 1);
    expect(await c.simpleReply()).toEqual({ error: C.NBD_EOVERFLOW, handle: 1 });
    c.request(C.NBD_CMD_WRITE, 0, big, 2, 0, Buffer.alloc(big, 0x99));
    expect(await c.simpleReply()).toEqual({ error: C.NBD_EOVERFLOW, handle: 2 });
    c.request(C.NBD_CMD_READ, 0, 16, 3);
    expect(await c.simpleReply()).toEqual({ error: 0, handle: 3 });
    expect((await c.reader.read(16)).every((b) => b === 0x42)).toBe(true); // nothing of the 0x99 landed
    c.destroy();
    await stillServes();
  });

  it('sends NBD_REPLY_TYPE_ERROR chunks when structured replies are negotiated', async () => {
    const c = await RawClient.connect(port);
    await c.go(true);
    c.request(C.NBD_CMD_READ, SIZE, 512, 9);
    const h = await c.reader.read(20);
    expect(h.readUInt32BE(0)).toBe(C.NBD_STRUCTURED_REPLY_MAGIC);
    expect(h.readUInt16BE(4) & C.NBD_REPLY_FLAG_DONE).toBe(C.NBD_REPLY_FLAG_DONE);
    expect(h.readUInt16BE(6)).toBe(C.NBD_REPLY_TYPE_ERROR);
    expect(Number(h.readBigUInt64BE(8))).toBe(9);
    const body = await c.reader.read(h.readUInt32BE(16));
    expect(body.readUInt32BE(0)).toBe(C.NBD_EINVAL);
    c.destroy();
    await stillServes();
  });

  it('closes on a bad request magic in transmission', async () => {
    const c = await RawClient.connect(port);
    await c.go();
    c.sock.write(Buffer.alloc(28, 0x01));
    await c.closed;
    await stillServes();
  });

  it('survives a client that disconnects in the middle of a write payload', async () => {
    const c = await RawClient.connect(port);
    await c.go();
    const h = Buffer.alloc(28);
    h.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(C.NBD_CMD_WRITE, 6);
    h.writeUInt32BE(1048576, 24);
    c.sock.write(Buffer.concat([h, Buffer.alloc(1000, 0x13)]));
    await new Promise((r) => setTimeout(r, 50));
    c.destroy();
    await stillServes();
  });

  it('drops 200 idle connections at the handshake timeout while serving a real client', async () => {
    const started = Date.now();
    let served = false;
    const sockets = Array.from({ length: 200 }, () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.resume(); // read (and ignore) the greeting so the server's close is seen
      return s;
    });
    const idle = Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.on('close', () => resolve()))));
    for (let i = 0; i < 100 && server.connectionCount < 200; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.connectionCount).toBeGreaterThanOrEqual(200);
    // A real client is served while the 200 sit there, before the 3 s timeout hits.
    await stillServes();
    served = true;
    await idle;
    expect(served).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
    for (let i = 0; i < 100 && server.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.connectionCount).toBe(0);
    await stillServes();
  });

  it('nbdsh in non-strict mode gets EINVAL for an out-of-range read and can go on', async () => {
    requirePeer('nbdsh');
    const script = [
      'h.set_strict_mode(0)',
      'try:',
      `    h.pread(512, ${SIZE})`,
      '    print("NO-ERROR")',
      'except nbd.Error as e:',
      '    print("ERRNO", e.errno)',
      'assert h.pread(4096, 0) == b"\\x42" * 4096',
      'print("OK")',
    ].join('\n');
    const r = await runPeer('nbdsh', ['-u', uri, '-c', script], { env: { ...process.env, PATH: `/usr/bin:${process.env.PATH}` } });
    expect(r.stdout).toMatch(/ERRNO (22|EINVAL)/);
    expect(r.stdout).toContain('OK');
    await stillServes();
  });
});
