import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeader, RecordKind, type JournalRecord } from '../../journal/record.js';
import type { AppendRequestMsg, AppendResponseMsg, EntryMsg } from '../../rpc/messages.js';
import { loadProtos } from '../../rpc/proto.js';
import { startCollectorGrpc, type CollectorGrpcServer } from './server.js';
import { ERROR_CODE_KEY } from '../../rpc/status.js';
import type { StorePort, VolumePort } from './store-port.js';

/**
 * In-memory store behind the port, shaped like the real one: records are taken (checked,
 * queued) at the call and become durable `appendDelayMs` later; contiguous seqs,
 * idempotent resends.
 */
function fakeStore(appendDelayMs = 0): StorePort & { vols: Map<string, VolumePort & { records: JournalRecord[]; maxConcurrent: number }> } {
  const vols = new Map<string, VolumePort & { records: JournalRecord[]; maxConcurrent: number }>();
  const make = (name: string, size: bigint, token: string) => {
    let durable = 0n;
    let queued = 0n;
    let running = 0;
    const v = {
      name,
      size,
      records: [] as JournalRecord[],
      maxConcurrent: 0,
      get durableSeq() { return durable; },
      get latestTime() { return v.records.length ? v.records[v.records.length - 1]!.time : 0n; },
      generation: 1n,
      checkToken: (t: string) => t === token,
      async append(recs: JournalRecord[]) {
        running++;
        v.maxConcurrent = Math.max(v.maxConcurrent, running);
        try {
          for (const r of recs) {
            if (r.seq <= queued) continue;
            if (r.seq !== queued + 1n) throw new Error(`gap at ${r.seq}`);
            v.records.push(r);
            queued = r.seq;
          }
          const upTo = queued;
          await new Promise((r) => setTimeout(r, appendDelayMs));
          if (upTo > durable) durable = upTo;
          return durable;
        } finally {
          running--;
        }
      },
      addMark: () => { throw new Error('unused'); },
      deleteMark: async () => false,
      setToken: async () => undefined,
      noteRestore: async () => undefined,
      marks: () => [],
      resolve: () => ({ seq: durable, time: 0n }),
      restore: async () => undefined,
      diff: () => [],
      allocated: () => [],
      status: () => ({ name, size, generation: 1n, durableSeq: durable, durableTime: 0n, windowOldest: 0n, windowNewest: 0n, journalBytes: 0n }),
    };
    vols.set(name, v);
    return v;
  };
  return { vols, volume: (n) => vols.get(n), createVolume: (n, size, o) => make(n, size, o.token), volumeNames: () => [...vols.keys()], deleteVolume: async (n) => vols.delete(n) };
}

function entry(seq: bigint, crcDelta = 0): EntryMsg {
  const rec: JournalRecord = { kind: RecordKind.Write, flags: 0, seq, time: seq * 10n, offset: 0n, length: 4, payload: Buffer.from([1, 2, 3, Number(seq % 200n)]) };
  return { seq: seq.toString(), time: rec.time.toString(), kind: rec.kind, flags: 0, offset: '0', length: 4, payload: rec.payload, crc: (encodeHeader(rec).readUInt32LE(44) + crcDelta) >>> 0 };
}

type Duplex = grpc.ClientDuplexStream<AppendRequestMsg, AppendResponseMsg>;

function open(address: string): { call: Duplex; msgs: AppendResponseMsg[]; ended: Promise<grpc.ServiceError | undefined> } {
  const { collector } = loadProtos();
  const client = new collector(address, grpc.credentials.createInsecure()) as unknown as { Append(): Duplex; close(): void };
  const call = client.Append();
  const msgs: AppendResponseMsg[] = [];
  call.on('data', (m: AppendResponseMsg) => msgs.push(m));
  const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on('error', (e) => resolve(e as grpc.ServiceError));
    call.on('end', () => resolve(undefined));
  }).finally(() => client.close());
  return { call, msgs, ended };
}

const hello = (volume: string, token = 't'): AppendRequestMsg => ({ msg: 'hello', hello: { volume, size: '1048576', generation: '1', token, last_durable_seq: '0' } });
const codeOf = (e: grpc.ServiceError | undefined) => e?.metadata.get(ERROR_CODE_KEY)[0];
const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('Append stream handler', () => {
  const store = fakeStore(30);
  let server: CollectorGrpcServer;
  beforeAll(async () => {
    server = await startCollectorGrpc({ store, listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
  });
  afterAll(async () => {
    await server.close();
  });

  it('welcomes, appends, and acks the highest durable seq; resends below it are ignored', async () => {
    const s = open(server.address);
    s.call.write(hello('v1'));
    s.call.write({ msg: 'batch', batch: { entries: [entry(1n), entry(2n)] } });
    s.call.write({ msg: 'batch', batch: { entries: [entry(2n), entry(3n)] } });
    await until(() => s.msgs.length >= 3);
    s.call.end();
    expect(await s.ended).toBeUndefined();
    expect(s.msgs[0]).toMatchObject({ msg: 'welcome', welcome: { durable_seq: '0' } });
    expect(s.msgs.slice(1).map((m) => m.ack?.durable_seq)).toEqual(['2', '3']);
    expect(store.vols.get('v1')!.records.map((r) => r.seq)).toEqual([1n, 2n, 3n]);
  });

  it('keeps two appends in flight however fast the shipper sends, and acks in order', async () => {
    const s = open(server.address);
    s.call.write(hello('v2'));
    for (let i = 1n; i <= 12n; i++) s.call.write({ msg: 'batch', batch: { entries: [entry(i)] } });
    await until(() => s.msgs.at(-1)?.ack?.durable_seq === '12');
    s.call.end();
    await s.ended;
    expect(store.vols.get('v2')!.durableSeq).toBe(12n);
    expect(store.vols.get('v2')!.records.map((r) => r.seq)).toEqual([...Array(12).keys()].map((i) => BigInt(i + 1)));
    // The second group is handed over while the first is still being made durable, never a third.
    expect(store.vols.get('v2')!.maxConcurrent).toBe(2);
    const acks = s.msgs.slice(1).map((m) => BigInt(m.ack!.durable_seq));
    for (let i = 1; i < acks.length; i++) expect(acks[i]!).toBeGreaterThan(acks[i - 1]!);
  });

  it('refuses an entry whose CRC does not match its bytes', async () => {
    const s = open(server.address);
    s.call.write(hello('v3'));
    s.call.write({ msg: 'batch', batch: { entries: [entry(1n, 1)] } });
    const err = await s.ended;
    expect(err?.code).toBe(grpc.status.DATA_LOSS);
    expect(codeOf(err)).toBe('REWIND_ERR_CHECKSUM_MISMATCH');
    expect(store.vols.get('v3')!.durableSeq).toBe(0n);
  });

  it('refuses a stream that does not start with Hello', async () => {
    const s = open(server.address);
    s.call.write({ msg: 'batch', batch: { entries: [entry(1n)] } });
    expect(codeOf(await s.ended)).toBe('REWIND_ERR_PROTOCOL');
  });

  it('lets a newer stream for the same volume displace the older one', async () => {
    const a = open(server.address);
    a.call.write(hello('v4'));
    await until(() => a.msgs.length >= 1);
    const b = open(server.address);
    b.call.write(hello('v4'));
    const errA = await a.ended;
    expect(codeOf(errA)).toBe('REWIND_ERR_UNAVAILABLE');
    expect(errA?.details).toMatch(/newer Append stream/);
    await until(() => b.msgs.length >= 1);
    b.call.write({ msg: 'batch', batch: { entries: [entry(1n)] } });
    await until(() => b.msgs.length >= 2);
    expect(b.msgs[1]!.ack?.durable_seq).toBe('1');
    b.call.end();
    await b.ended;
  });

  it('refuses a wrong token for an existing volume with UNAUTHENTICATED', async () => {
    const s = open(server.address);
    s.call.write(hello('v1', 'not-the-token'));
    const err = await s.ended;
    expect(err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(codeOf(err)).toBe('REWIND_ERR_UNAUTHENTICATED');
  });
});
