import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeader, RecordKind, type JournalRecord } from '../../journal/record.js';
import type { AppendRequestMsg, AppendResponseMsg, EntryMsg } from '../../rpc/messages.js';
import { loadProtos } from '../../rpc/proto.js';
import { ERROR_CODE_KEY } from '../../rpc/status.js';
import { startCollectorGrpc, type CollectorGrpcServer } from './server.js';
import type { StorePort, VolumePort } from './store-port.js';

/**
 * Hostile Append streams against the collector's bounds: more streams than allowed (in
 * total, and for one volume), and shippers that send as fast as flow control lets them
 * to a store that never finishes an append. Memory is measured two ways: the handler's
 * own count of bytes it holds, and process.memoryUsage().arrayBuffers (the clients here
 * write one message at a time, so what grows is the server's).
 */
const MiB = 1 << 20;
const TOKEN = 'token-of-the-volume-0123456789';
const LIMITS = { streams: 12, streamsPerVolume: 2, streamBytes: 4 * MiB, totalBytes: 16 * MiB, helloTimeoutMs: 60_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Volumes exist with TOKEN; append never settles until `open()`: nothing is ever freed. */
function stalledStore(): StorePort & { open(): void } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const vols = new Map<string, VolumePort>();
  const make = (name: string): VolumePort => {
    let durable = 0n;
    const v: VolumePort = {
      name,
      size: 1n << 30n,
      get durableSeq() { return durable; },
      latestTime: 0n,
      generation: 1n,
      checkToken: (t: string) => t === TOKEN,
      async append(recs: JournalRecord[]) {
        await gate;
        for (const r of recs) if (r.seq > durable) durable = r.seq;
        return durable;
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
      status: () => ({ name, size: 1n << 30n, generation: 1n, durableSeq: durable, durableTime: 0n, windowOldest: 0n, windowNewest: 0n, journalBytes: 0n }),
    } as unknown as VolumePort;
    vols.set(name, v);
    return v;
  };
  for (let i = 0; i < 40; i++) make(`v${i}`);
  return {
    open,
    volume: (n: string) => vols.get(n),
    createVolume: async () => { throw new Error('volumes are pre-made here'); },
    volumeNames: () => [...vols.keys()],
    deleteVolume: async () => false,
  } as unknown as StorePort & { open(): void };
}

const payload = Buffer.alloc(MiB, 0x5a);
function entry(seq: bigint): EntryMsg {
  const rec: JournalRecord = { kind: RecordKind.Write, flags: 0, seq, time: seq * 10n, offset: 0n, length: payload.length, payload };
  return { seq: seq.toString(), time: rec.time.toString(), kind: rec.kind, flags: 0, offset: '0', length: payload.length, payload, crc: encodeHeader(rec).readUInt32LE(44) };
}

type Duplex = grpc.ClientDuplexStream<AppendRequestMsg, AppendResponseMsg>;
interface Stream { call: Duplex; msgs: AppendResponseMsg[]; ended: Promise<grpc.ServiceError | undefined>; client: { close(): void } }

/** Each stream on a connection of its own, as separate hostile nodes would. */
function open(address: string): Stream {
  const { collector } = loadProtos();
  const client = new collector(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 80 * MiB }) as unknown as { Append(): Duplex; close(): void };
  const call = client.Append();
  const msgs: AppendResponseMsg[] = [];
  call.on('data', (m: AppendResponseMsg) => msgs.push(m));
  const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on('error', (e) => resolve(e as grpc.ServiceError));
    call.on('end', () => resolve(undefined));
  });
  return { call, msgs, ended, client };
}

const hello = (volume: string): AppendRequestMsg => ({ msg: 'hello', hello: { volume, size: '0', generation: '1', token: TOKEN, last_durable_seq: '0' } });
const codeOf = (e: grpc.ServiceError | undefined) => e?.metadata.get(ERROR_CODE_KEY)[0];

/** Send 1 MiB batches one at a time (the next once the last is written) until `stop`. */
function flood(s: Stream, stop: { done: boolean }): void {
  let seq = 1n;
  const next = (): void => {
    if (stop.done) return;
    s.call.write({ msg: 'batch', batch: { entries: [entry(seq++)] } }, () => setImmediate(next));
  };
  next();
}

describe('an Append stream that never says Hello', () => {
  it('is closed after helloTimeoutMs and gives its slot back', async () => {
    const server = await startCollectorGrpc({ store: stalledStore(), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true, appendLimits: { ...LIMITS, helloTimeoutMs: 300 } });
    try {
      const quiet = open(server.address); // opens the stream, sends nothing
      await new Promise((r) => setTimeout(r, 100));
      expect(server.appendMemory().streams).toBeGreaterThanOrEqual(1);
      const err = await Promise.race([quiet.ended, sleep(3000).then(() => 'still open' as const)]);
      expect(err).not.toBe('still open');
      expect((err as grpc.ServiceError).details).toMatch(/no Hello within 300 ms/);
      for (let i = 0; i < 50 && server.appendMemory().streams > 0; i++) await sleep(20);
      expect(server.appendMemory().streams).toBe(0);
      quiet.client.close();
    } finally {
      await server.close();
    }
  });
});

describe('Append streams are bounded in number and in bytes held', () => {
  const store = stalledStore();
  let server: CollectorGrpcServer;
  const streams: Stream[] = [];
  beforeAll(async () => {
    server = await startCollectorGrpc({ store, listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true, appendLimits: LIMITS });
  });
  afterAll(async () => {
    store.open();
    for (const s of streams) s.call.cancel();
    await server.close();
    for (const s of streams) s.client.close();
  });

  it('holds what fast shippers send to a stalled store within the per-stream and total bounds', async () => {
    const stop = { done: false };
    const n = 8;
    global.gc?.();
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < n; i++) {
      const s = open(server.address);
      streams.push(s);
      s.call.write(hello(`v${i}`));
      flood(s, stop);
    }
    let peak = before;
    for (let t = 0; t < 150; t++) {
      await sleep(20);
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    stop.done = true;
    const grown = peak - before;
    const held = (server as { appendMemory?: () => { held: number; peak: number } }).appendMemory?.();
    console.log(`${n} streams flooding a stalled store: arrayBuffers grew ${(grown / MiB).toFixed(0)} MiB; handler held ${held ? (held.peak / MiB).toFixed(1) : '?'} MiB at peak`);
    // Total bound, plus per stream what cannot be refused: one message past the bound, one
    // decoded by grpc-js and 16 MiB of HTTP/2 window (server.ts RECEIVE_WINDOW_BYTES).
    expect(grown).toBeLessThan(LIMITS.totalBytes + n * (2 * MiB + 16 * MiB) + 32 * MiB);
    expect(held).toBeDefined();
    expect(held!.peak).toBeLessThanOrEqual(LIMITS.totalBytes + n * MiB);
    // Every stream still streams: none was cut for sending too fast.
    for (const s of streams) expect(s.msgs[0]?.msg).toBe('welcome');
  });

  it('refuses a volume more streams than streamsPerVolume while its earlier ones still hold appends', async () => {
    // v0's first stream has appends stuck in the store; a second may wait to displace it,
    // a third is one too many.
    const b = open(server.address);
    streams.push(b);
    const c = open(server.address);
    streams.push(c);
    for (const s of [b, c]) s.call.write(hello('v0'));
    const results = await Promise.all([b, c].map((s) => Promise.race([s.ended, sleep(800).then(() => 'open' as const)])));
    const errs = results.filter((r): r is grpc.ServiceError => r !== 'open' && r !== undefined);
    expect(errs.length).toBeGreaterThanOrEqual(1);
    expect(errs.some((e) => e.code === grpc.status.RESOURCE_EXHAUSTED && /volume "v0"/.test(e.details))).toBe(true);
  });
  it('refuses Append streams past the total with RESOURCE_EXHAUSTED, saying what to do', async () => {
    const extra: Stream[] = [];
    for (let i = 20; i < 30; i++) {
      const s = open(server.address);
      extra.push(s);
      s.call.write(hello(`v${i}`));
    }
    streams.push(...extra);
    const results = await Promise.all(extra.map((s) => Promise.race([s.ended, sleep(800).then(() => 'open' as const)])));
    const errs = results.filter((r): r is grpc.ServiceError => r !== 'open' && r !== undefined);
    // At least the 8 flooding streams are live, so at most 4 of these 10 fit.
    expect(errs.length).toBeGreaterThanOrEqual(10 - (LIMITS.streams - 8));
    for (const e of errs) {
      expect(e.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(codeOf(e)).toBe('REWIND_ERR_TOO_MANY_STREAMS');
      expect(e.details).toMatch(/Append streams/);
    }
  });
});
