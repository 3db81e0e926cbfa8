/**
 * Item 1: collector ingest MiB/s against fsync'd sequential writes of the same batches to
 * the same disk. Two paths: VolumeStore.append called batch after batch exactly as the
 * gRPC Append handler does (one append in flight, each resolving after fdatasync), and the
 * real thing — a Shipper streaming over a unix socket to the gRPC service in another process.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CollectorStore } from '../src/collector/store/index.js';
import { encodeHeader, type JournalRecord, type RecordKind } from '../src/journal/record.js';
import { Shipper, type ShipperSpool } from '../src/ship/shipper.js';
import { NODE_FLAGS } from '../src/core/node-flags.js';
import { stopProcess } from './fio-nbd.js';
import { fsyncedSequentialWrites, MiB, payloadBytes, WriteMix } from './collector-workload.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'collector-grpc-child.js');

export const BATCH_BYTES = 1 * MiB; // the Shipper's default maxBatchBytes

export interface IngestResult {
  bytes: number;
  batchBytes: number;
  refMiBs: number;
  storeMiBs: number;
  /** Shipper → collector over TCP on 127.0.0.1: the path a node takes to a remote collector; the target applies here. */
  grpcMiBs: number;
  storeRatio: number;
  grpcRatio: number;
  /** The same over the unix socket `rewind up` uses between its own shipper and collector (reported). */
  grpcUnixMiBs: number;
  grpcUnixRatio: number;
  /**
   * The same gRPC run with the collector's data in /dev/shm (no disk cost): the transport's
   * own ceiling on this machine, to tell a slow store from a slow stream. Absent without /dev/shm.
   */
  grpcMemoryMiBs?: number;
}

/** A pre-filled in-memory spool (like the spool's tail cache): the shipper reads it as fast as it can send. */
class PrefilledSpool implements ShipperSpool {
  ackedSeq = 0n;
  private wake: Array<() => void> = [];
  constructor(private readonly records: JournalRecord[]) {}
  get lastSeq(): bigint {
    return BigInt(this.records.length);
  }
  async append(_e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }): Promise<JournalRecord | null> {
    return null; // no base copy in this benchmark
  }
  async read(fromSeq: bigint, opts: { maxRecords?: number; maxBytes?: number } = {}): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    let bytes = 0;
    for (let i = Number(fromSeq) - 1; i >= 0 && i < this.records.length; i++) {
      const r = this.records[i]!;
      if (out.length > 0 && (out.length >= (opts.maxRecords ?? 1024) || bytes + r.length > (opts.maxBytes ?? MiB))) break;
      out.push(r);
      bytes += r.length + 48;
    }
    return out;
  }
  waitForRecords(afterSeq: bigint, signal?: AbortSignal): Promise<void> {
    if (this.lastSeq > afterSeq || signal?.aborted) return Promise.resolve();
    // Nothing more will arrive; park until the shipper stops.
    return new Promise((resolve) => {
      this.wake.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }
  ack(seq: bigint): void {
    if (seq > this.ackedSeq) this.ackedSeq = seq;
  }
}

async function storeIngest(dir: string, batches: JournalRecord[][], size: number): Promise<number> {
  const store = await CollectorStore.open(dir);
  try {
    const vol = await store.createVolume('ingest', BigInt(size));
    const t0 = performance.now();
    let prev: Promise<bigint> | undefined;
    for (const b of batches) {
      const next = vol.append(b);
      if (prev) await prev;
      prev = next;
    }
    await prev;
    return (performance.now() - t0) / 1000;
  } finally {
    await store.close();
  }
}

/**
 * How the shipper reaches the collector: TCP on 127.0.0.1, as a node reaches a remote
 * collector (plaintext here; production adds TLS), or the unix socket `rewind up` uses.
 */
export type IngestTransport = 'tcp' | 'unix';

/** Start bench/collector-grpc-child.js; resolves with its address once it says "ready". */
async function startCollectorProcess(dir: string, transport: IngestTransport): Promise<{ child: ChildProcess; address: string }> {
  await fsp.mkdir(dir, { recursive: true });
  const listen = transport === 'tcp' ? 'tcp' : path.join(dir, 'grpc.sock');
  const child = spawn(process.execPath, [...NODE_FLAGS, CHILD, path.join(dir, 'data'), listen], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const address = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`collector child not ready after 20 s: ${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      const m = /ready (\S+)/.exec(d.toString());
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`collector child exited ${code}: ${err}`));
    });
  });
  return { child, address };
}

export async function grpcIngest(dir: string, records: JournalRecord[], size: number, transport: IngestTransport): Promise<number> {
  const { child, address } = await startCollectorProcess(dir, transport);
  const spool = new PrefilledSpool(records);
  const shipper = new Shipper({ spool, volume: 'ingest', size: BigInt(size), token: 'bench', target: { address, allowPlaintext: true }, mode: 'async', maxBatchBytes: BATCH_BYTES });
  try {
    const t0 = performance.now();
    shipper.start();
    await shipper.drain(AbortSignal.timeout(300_000));
    const secs = (performance.now() - t0) / 1000;
    if (spool.ackedSeq !== spool.lastSeq) throw new Error(`gRPC ingest: collector acknowledged ${spool.ackedSeq} of ${spool.lastSeq} records`);
    return secs;
  } finally {
    await shipper.stop();
    await stopProcess(child);
  }
}

/** Alternates reference and ours over `rounds`, keeping each one's best, on `totalBytes` of the mix. */
export async function benchIngest(work: string, totalBytes: number, rounds: number): Promise<IngestResult> {
  const volSize = 1024 * MiB;
  const mix = new WriteMix(volSize, 11);
  const batches: JournalRecord[][] = [];
  let bytes = 0;
  while (bytes < totalBytes) {
    const b = mix.batch(BATCH_BYTES);
    // As the spool hands them over: its writer computed each CRC once, when the NBD write
    // was journaled (journal/writer.ts sets rec.crc), and the shipper reuses it.
    for (const r of b) r.crc = encodeHeader(r).readUInt32LE(44);
    batches.push(b);
    bytes += payloadBytes(b);
  }
  const sizes = batches.map(payloadBytes);
  let ref = Infinity;
  let st = Infinity;
  let gr = Infinity;
  let gu = Infinity;
  for (let i = 0; i < rounds; i++) {
    const d = path.join(work, `ingest-${i}`);
    await fsp.mkdir(d, { recursive: true });
    const steps: Array<() => Promise<void>> = [
      async () => void (ref = Math.min(ref, await fsyncedSequentialWrites(path.join(d, 'ref.bin'), sizes))),
      async () => void (st = Math.min(st, await storeIngest(path.join(d, 'store'), batches, volSize))),
      async () => void (gr = Math.min(gr, await grpcIngest(path.join(d, 'grpc'), batches.flat(), volSize, 'tcp'))),
      async () => void (gu = Math.min(gu, await grpcIngest(path.join(d, 'grpc-unix'), batches.flat(), volSize, 'unix'))),
    ];
    // Order rotates each round so no side always gets the freshest disk.
    for (let k = 0; k < steps.length; k++) await steps[(k + i) % steps.length]!();
    await fsp.rm(d, { recursive: true, force: true });
  }
  const mibs = (s: number) => bytes / MiB / s;
  let grpcMemoryMiBs: number | undefined;
  const shm = await fsp.mkdtemp('/dev/shm/rewind-bench-').catch(() => undefined);
  if (shm) {
    try {
      grpcMemoryMiBs = mibs(await grpcIngest(shm, batches.flat(), volSize, 'tcp'));
    } finally {
      await fsp.rm(shm, { recursive: true, force: true });
    }
  }
  return { bytes, batchBytes: BATCH_BYTES, refMiBs: mibs(ref), storeMiBs: mibs(st), grpcMiBs: mibs(gr), storeRatio: ref / st, grpcRatio: ref / gr, grpcUnixMiBs: mibs(gu), grpcUnixRatio: ref / gu, grpcMemoryMiBs };
}
