import { describe, expect, it } from 'vitest';
import { AsyncReader } from '../async-reader.js';
import type { Backend } from '../backend.js';
import * as C from '../constants.js';
import { ExportRegistry } from '../export-registry.js';
import { onClientFlags, runHandshake } from './machine.js';
import type { HandshakeIo, TlsMode } from './state.js';

const fakeBackend = { size: 1048576n, capabilities: { readOnly: false, flush: true, fua: true, trim: true, zero: true, multiConn: true, blockStatus: true, cache: true }, blockSizes: { minimum: 1, preferred: 4096, maximum: 1 << 25 } } as unknown as Backend;

function option(opt: number, payload: Buffer = Buffer.alloc(0), declared = payload.length): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(C.IHAVEOPT, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(declared, 12);
  return Buffer.concat([h, payload]);
}
const flags = (f: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(f); return b; };
const str = (s: string): Buffer => { const b = Buffer.from(s); const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]); };
const goPayload = (name: string, infos: number[] = []): Buffer => {
  const n = Buffer.alloc(2 + 2 * infos.length);
  n.writeUInt16BE(infos.length, 0);
  infos.forEach((t, i) => n.writeUInt16BE(t, 2 + 2 * i));
  return Buffer.concat([str(name), n]);
};
const metaPayload = (name: string, queries: string[]): Buffer => {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(queries.length);
  return Buffer.concat([str(name), n, ...queries.map(str)]);
};

/** Run the machine over scripted client bytes; collect the option replies the server wrote. */
async function drive(input: Buffer[], tls: TlsMode = 'off') {
  const reader = new AsyncReader();
  const out: Buffer[] = [];
  const io: HandshakeIo = { read: (n) => reader.read(n), skip: (n) => reader.skip(n), write: (b) => void out.push(b) };
  for (const b of input) reader.push(b);
  reader.close();
  const exports = new ExportRegistry().add('', fakeBackend).add('disk', fakeBackend, { description: 'the disk' });
  const end = await runHandshake({ io, exports, tls });
  const all = Buffer.concat(out);
  const replies: Array<{ option: number; type: number; data: Buffer }> = [];
  let at = 18; // greeting
  while (at + 20 <= all.length && all.readBigUInt64BE(at) === C.OPT_REPLY_MAGIC) {
    const len = all.readUInt32BE(at + 16);
    replies.push({ option: all.readUInt32BE(at + 8), type: all.readUInt32BE(at + 12), data: all.subarray(at + 20, at + 20 + len) });
    at += 20 + len;
  }
  return { end, replies, all, rest: all.subarray(at) };
}

const FIXED = C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES;

describe('handshake state machine', () => {
  it('refuses unknown client flags and non-fixed newstyle clients', () => {
    expect(onClientFlags(0x80).kind).toBe('Dead');
    expect(onClientFlags(0).kind).toBe('Dead');
    expect(onClientFlags(FIXED).kind).toBe('Options');
  });

  it('greets with NBDMAGIC, IHAVEOPT and fixed-newstyle + no-zeroes', async () => {
    const { all } = await drive([]);
    expect(all.readBigUInt64BE(0)).toBe(C.NBDMAGIC);
    expect(all.readBigUInt64BE(8)).toBe(C.IHAVEOPT);
    expect(all.readUInt16BE(16)).toBe(C.NBD_FLAG_FIXED_NEWSTYLE | C.NBD_FLAG_NO_ZEROES);
  });

  it('GO on a known export sends INFO_EXPORT, BLOCK_SIZE, NAME/DESCRIPTION when asked, then enters transmission', async () => {
    const { end, replies } = await drive([flags(FIXED), option(C.NBD_OPT_GO, goPayload('disk', [C.NBD_INFO_NAME, C.NBD_INFO_DESCRIPTION]))]);
    expect(end.kind).toBe('Transmission');
    const infos = replies.filter((r) => r.type === C.NBD_REP_INFO).map((r) => r.data.readUInt16BE(0));
    expect(infos).toEqual([C.NBD_INFO_EXPORT, C.NBD_INFO_BLOCK_SIZE, C.NBD_INFO_NAME, C.NBD_INFO_DESCRIPTION]);
    const exp = replies[0]!.data;
    expect(exp.readBigUInt64BE(2)).toBe(1048576n);
    expect(exp.readUInt16BE(10) & C.NBD_FLAG_CAN_MULTI_CONN).toBe(C.NBD_FLAG_CAN_MULTI_CONN);
    expect(replies.at(-1)!.type).toBe(C.NBD_REP_ACK);
  });

  it('GO on an unknown export is NBD_REP_ERR_UNKNOWN and negotiation continues', async () => {
    const { end, replies } = await drive([flags(FIXED), option(C.NBD_OPT_GO, goPayload('nope')), option(C.NBD_OPT_ABORT)]);
    expect(replies.map((r) => r.type)).toEqual([C.NBD_REP_ERR_UNKNOWN, C.NBD_REP_ACK]);
    expect(end.kind).toBe('Closed');
  });

  it('malformed INFO payload is NBD_REP_ERR_INVALID', async () => {
    const { replies } = await drive([flags(FIXED), option(C.NBD_OPT_INFO, Buffer.from([0, 0, 0, 9, 1]))]);
    expect(replies[0]!.type).toBe(C.NBD_REP_ERR_INVALID);
  });

  it('unknown options are drained and answered NBD_REP_ERR_UNSUP; oversized ones NBD_REP_ERR_TOO_BIG', async () => {
    const { replies } = await drive([flags(FIXED), option(4242, Buffer.alloc(300, 1)), option(C.NBD_OPT_LIST, Buffer.alloc(C.MAX_OPTION_PAYLOAD + 1), C.MAX_OPTION_PAYLOAD + 1), option(C.NBD_OPT_LIST)]);
    expect(replies.map((r) => r.type)).toEqual([C.NBD_REP_ERR_UNSUP, C.NBD_REP_ERR_TOO_BIG, C.NBD_REP_SERVER, C.NBD_REP_SERVER, C.NBD_REP_ACK]);
  });

  it('an option payload beyond the drain limit ends in Dead after the error reply', async () => {
    const { end, replies } = await drive([flags(FIXED), option(C.NBD_OPT_INFO, Buffer.alloc(0), C.MAX_OPTION_DRAIN + 1)]);
    expect(replies[0]!.type).toBe(C.NBD_REP_ERR_TOO_BIG);
    expect(end.kind).toBe('Dead');
  });

  it('bad option magic is Dead', async () => {
    const { end } = await drive([flags(FIXED), Buffer.alloc(16, 7)]);
    expect(end.kind).toBe('Dead');
  });

  it('SET_META_CONTEXT needs structured replies, then selects base:allocation for that export', async () => {
    const { end, replies } = await drive([
      flags(FIXED),
      option(C.NBD_OPT_SET_META_CONTEXT, metaPayload('disk', [C.BASE_ALLOCATION])),
      option(C.NBD_OPT_STRUCTURED_REPLY),
      option(C.NBD_OPT_SET_META_CONTEXT, metaPayload('disk', [C.BASE_ALLOCATION, 'qemu:dirty-bitmap:x'])),
      option(C.NBD_OPT_GO, goPayload('disk')),
    ]);
    expect(replies[0]!.type).toBe(C.NBD_REP_ERR_INVALID);
    expect(replies[1]!.type).toBe(C.NBD_REP_ACK);
    expect(replies[2]!.type).toBe(C.NBD_REP_META_CONTEXT);
    expect(replies[2]!.data.readUInt32BE(0)).toBe(C.BASE_ALLOCATION_ID);
    expect(replies[2]!.data.subarray(4).toString()).toBe(C.BASE_ALLOCATION);
    expect(end.kind === 'Transmission' && end.session.baseAllocation && end.session.structuredReplies).toBe(true);
  });

  it('a meta context set for another export does not apply after GO', async () => {
    const { end } = await drive([
      flags(FIXED), option(C.NBD_OPT_STRUCTURED_REPLY),
      option(C.NBD_OPT_SET_META_CONTEXT, metaPayload('disk', [C.BASE_ALLOCATION])),
      option(C.NBD_OPT_GO, goPayload('')),
    ]);
    expect(end.kind === 'Transmission' && end.session.baseAllocation).toBe(false);
  });

  it('LIST_META_CONTEXT with no queries lists base:allocation', async () => {
    const { replies } = await drive([flags(FIXED), option(C.NBD_OPT_LIST_META_CONTEXT, metaPayload('', []))]);
    expect(replies.map((r) => r.type)).toEqual([C.NBD_REP_META_CONTEXT, C.NBD_REP_ACK]);
  });

  it('STARTTLS without TLS configured is NBD_REP_ERR_POLICY', async () => {
    const { replies } = await drive([flags(FIXED), option(C.NBD_OPT_STARTTLS)]);
    expect(replies[0]!.type).toBe(C.NBD_REP_ERR_POLICY);
  });

  it('a TLS-required server refuses GO before STARTTLS and closes on EXPORT_NAME', async () => {
    const a = await drive([flags(FIXED), option(C.NBD_OPT_GO, goPayload(''))], 'required');
    expect(a.replies[0]!.type).toBe(C.NBD_REP_ERR_TLS_REQD);
    const b = await drive([flags(FIXED), option(C.NBD_OPT_EXPORT_NAME, Buffer.from(''))], 'required');
    expect(b.end.kind).toBe('Dead');
  });

  it('EXPORT_NAME answers size + flags (no zero padding when asked) or closes for an unknown name', async () => {
    const ok = await drive([flags(FIXED), option(C.NBD_OPT_EXPORT_NAME, Buffer.from('disk'))]);
    expect(ok.end.kind).toBe('Transmission');
    expect(ok.rest.length).toBe(10);
    expect(ok.rest.readBigUInt64BE(0)).toBe(1048576n);
    const padded = await drive([flags(C.NBD_FLAG_C_FIXED_NEWSTYLE), option(C.NBD_OPT_EXPORT_NAME, Buffer.from(''))]);
    expect(padded.rest.length).toBe(134);
    const bad = await drive([flags(FIXED), option(C.NBD_OPT_EXPORT_NAME, Buffer.from('zzz'))]);
    expect(bad.end.kind).toBe('Dead');
  });

  it('a peer that hangs up mid-option ends Closed', async () => {
    const { end } = await drive([flags(FIXED), option(C.NBD_OPT_GO, Buffer.alloc(3), 10)]);
    expect(end.kind).toBe('Closed');
  });
});
