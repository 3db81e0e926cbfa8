import net from 'node:net';
import { expect } from 'vitest';
import { AsyncReader } from '../../src/nbd/async-reader.js';
import * as C from '../../src/nbd/constants.js';

/** The 28-byte header of a transmission request. */
export function requestHeader(type: number, offset: number, length: number, handle: number, flags = 0): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(BigInt(handle), 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return h;
}

/** A hand-driven client: exactly the bytes we choose, to probe the server's edges. */
export class RawClient {
  readonly reader = new AsyncReader();
  readonly closed: Promise<void>;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.reader.push(d));
    this.closed = new Promise((resolve) => sock.on('close', () => { this.reader.close(); resolve(); }));
    sock.on('error', () => undefined);
  }
  /** TCP port on 127.0.0.1, or a unix socket path. */
  static async connect(where: number | string): Promise<RawClient> {
    const s = typeof where === 'number' ? net.connect(where, '127.0.0.1') : net.connect(where);
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    const c = new RawClient(s);
    const g = await c.reader.read(18);
    expect(g.readBigUInt64BE(0)).toBe(C.NBDMAGIC);
    expect(g.readBigUInt64BE(8)).toBe(C.IHAVEOPT);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES);
    s.write(flags);
    return c;
  }
  sendOption(option: number, payload: Buffer, declaredLength = payload.length): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(C.IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(declaredLength, 12);
    this.sock.write(Buffer.concat([h, payload]));
  }
  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.reader.read(20);
    expect(h.readBigUInt64BE(0)).toBe(C.OPT_REPLY_MAGIC);
    const data = await this.reader.read(h.readUInt32BE(16));
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
  }
  /** NBD_OPT_GO for export "" → transmission. */
  async go(structured = false): Promise<void> {
    if (structured) {
      this.sendOption(C.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0));
      expect((await this.optionReply()).type).toBe(C.NBD_REP_ACK);
    }
    this.sendOption(C.NBD_OPT_GO, Buffer.from([0, 0, 0, 0, 0, 0]));
    for (;;) {
      const r = await this.optionReply();
      if (r.type === C.NBD_REP_ACK) return;
      expect(r.type).toBe(C.NBD_REP_INFO);
    }
  }
  request(type: number, offset: number, length: number, handle: number, flags = 0, payload?: Buffer): void {
    const h = requestHeader(type, offset, length, handle, flags);
    this.sock.write(payload ? Buffer.concat([h, payload]) : h);
  }
  async simpleReply(): Promise<{ error: number; handle: number }> {
    const r = await this.reader.read(16);
    expect(r.readUInt32BE(0)).toBe(C.NBD_SIMPLE_REPLY_MAGIC);
    return { error: r.readUInt32BE(4), handle: Number(r.readBigUInt64BE(8)) };
  }
  destroy(): void {
    this.sock.destroy();
  }
}
