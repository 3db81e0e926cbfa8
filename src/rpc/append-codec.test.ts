import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { decodeAppendRequest, encodeBatchRequest } from './append-codec.js';
import type { AppendRequestMsg, EntryMsg } from './messages.js';
import { LOADER_OPTIONS, protoRoot } from './proto.js';

// protobufjs through proto-loader, untouched by the hand codec: the reference.
const def = protoLoader.loadSync(['rewind/v1alpha1/collector.proto'], { ...LOADER_OPTIONS, includeDirs: [protoRoot()] });
const append = (def['rewind.v1alpha1.Collector'] as protoLoader.ServiceDefinition).Append!;
const refEncode = (m: AppendRequestMsg): Buffer => append.requestSerialize(m);
const refDecode = (b: Buffer): AppendRequestMsg => append.requestDeserialize(b) as AppendRequestMsg;

const MAX_U64 = 0xffff_ffff_ffff_ffffn;

function entries(): EntryMsg[] {
  return [
    { seq: 1n, time: 1_763_800_000_123_456_789n, kind: 1, flags: 0, offset: 0n, length: 5, payload: Buffer.from('hello'), crc: 0xdeadbeef },
    { seq: 2n, time: 1_763_800_000_123_456_790n, kind: 2, flags: 1, offset: (1n << 40n) + 512n, length: 1 << 20, payload: Buffer.alloc(0), crc: 0 },
    { seq: 0n, time: 0n, kind: 0, flags: 0, offset: 0n, length: 0, payload: Buffer.alloc(0), crc: 0 },
    { seq: MAX_U64, time: MAX_U64, kind: 4, flags: 15, offset: (1n << 53n) + 1n, length: 0xffff_ffff, payload: Buffer.from('mark-name'), crc: 0xffff_ffff },
    { seq: 127n, time: 128n, kind: 3, flags: 2, offset: 16383n, length: 16384, payload: Buffer.alloc(70_000, 0xa5), crc: 0x8000_0000 },
  ];
}

function normal(e: EntryMsg) {
  return { seq: BigInt(e.seq), time: BigInt(e.time), kind: e.kind, flags: e.flags, offset: BigInt(e.offset), length: e.length, payload: Buffer.from(e.payload ?? []).toString('hex'), crc: e.crc >>> 0 };
}

describe('Append hand codec', () => {
  it('encodes batches that protobufjs decodes to the same entries', () => {
    const es = entries();
    const got = refDecode(encodeBatchRequest({ entries: es }));
    expect(got.msg).toBe('batch');
    expect(got.batch!.entries.map(normal)).toEqual(es.map(normal));
  });

  it('decodes what protobufjs encodes, payloads as views of the message', () => {
    const es = entries();
    const wire = refEncode({ msg: 'batch', batch: { entries: es.map((e) => ({ ...e, seq: e.seq.toString(), time: e.time.toString(), offset: e.offset.toString() })) } });
    const got = decodeAppendRequest(wire, refDecode);
    expect(got.batch!.entries.map(normal)).toEqual(es.map(normal));
    const big = got.batch!.entries[4]!.payload;
    expect(big.buffer).toBe(wire.buffer);
  });

  it('leaves Hello and empty batches to the generic codec', () => {
    const hello: AppendRequestMsg = { msg: 'hello', hello: { volume: 'v', size: '4096', generation: '0', token: 't', last_durable_seq: '7' } };
    const wire = refEncode(hello);
    let used = 0;
    const got = decodeAppendRequest(wire, (b) => (used++, refDecode(b)));
    expect(used).toBe(1);
    expect(got.hello).toMatchObject({ volume: 'v', token: 't', last_durable_seq: '7' });
    const empty = decodeAppendRequest(encodeBatchRequest({ entries: [] }), refDecode);
    expect(empty.batch!.entries).toEqual([]);
  });

  it('skips fields it does not know, as protobuf requires', () => {
    const e = entries()[0]!;
    const plain = encodeBatchRequest({ entries: [e] });
    // Append an unknown field 15 (varint) and 14 (fixed32) inside the entry, fixing lengths.
    const entryLen = plain[3]!;
    const extra = Buffer.from([(15 << 3) | 0, 0x96, 0x01, (14 << 3) | 5, 1, 2, 3, 4]);
    const body = Buffer.concat([plain.subarray(4, 4 + entryLen), extra]);
    const wire = Buffer.concat([Buffer.from([0x12, body.length + 2, 0x0a, body.length]), body]);
    expect(decodeAppendRequest(wire, refDecode).batch!.entries.map(normal)).toEqual([normal(e)]);
    expect(refDecode(wire).batch!.entries.map(normal)).toEqual([normal(e)]);
  });

  it('refuses truncated and overlong input with an error instead of garbage', () => {
    const wire = encodeBatchRequest({ entries: entries() });
    for (const cut of [2, 10, 40, wire.length - 1]) {
      expect(() => decodeAppendRequest(wire.subarray(0, cut), refDecode)).toThrow(/malformed AppendRequest/);
    }
    const overlong = Buffer.from([0x12, 0x0b, 0x0a, 0x09, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(() => decodeAppendRequest(overlong, refDecode)).toThrow(/malformed/);
  });
});
