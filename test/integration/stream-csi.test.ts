import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../../src/rpc/proto.js';
import { startCollectorGrpc, type CollectorGrpcServer } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/index.js';
import { RecordKind } from '../../src/journal/record.js';
import { Shipper } from '../../src/ship/shipper.js';
import { MemorySpool, replay } from '../helpers/stream-fixtures.js';

const SIZE = 4 * 1024 * 1024;
const TOKEN = 'csi-token';
const VOL = 'vol-csi';

let dir: string;
let store: CollectorStore;
let server: CollectorGrpcServer;
let client: grpc.Client & Record<string, (req: unknown) => grpc.ClientReadableStream<Resp>>;
const spool = new MemorySpool();
const markSeq = new Map<string, bigint>();

interface Resp {
  block_metadata_type: string;
  volume_capacity_bytes: string;
  block_metadata: Array<{ byte_offset: string; size_bytes: string }>;
}
type Ext = [number, number];

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-stream-csi-'));
  store = await CollectorStore.open(dir);
  server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
  const shipper = new Shipper({ spool, volume: VOL, size: BigInt(SIZE), token: TOKEN, target: { address: server.address, allowPlaintext: true } });
  shipper.start();
  let seed = 3;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  for (let m = 0; m < 3; m++) {
    for (let i = 0; i < 150; i++) {
      const off = BigInt(Math.floor(rnd() * (SIZE / 4096)) * 4096);
      const len = 4096 * (1 + Math.floor(rnd() * 3));
      if (off + BigInt(len) > BigInt(SIZE)) continue;
      if (rnd() < 0.1) await spool.append({ kind: RecordKind.Trim, flags: 0, offset: off, length: len, payload: Buffer.alloc(0) });
      else await spool.append({ kind: RecordKind.Write, flags: 0, offset: off, length: len, payload: Buffer.alloc(len, 1 + Math.floor(rnd() * 250)) });
    }
    const rec = await spool.append({ kind: RecordKind.Mark, flags: 0, offset: 0n, length: 0, payload: Buffer.from(`snap${m}`) });
    markSeq.set(`snap${m}`, rec.seq);
  }
  await shipper.drain(AbortSignal.timeout(30_000));
  await shipper.stop();
  const { snapshotMetadata } = loadProtos();
  client = new snapshotMetadata(server.address, grpc.credentials.createInsecure()) as never;
});

afterAll(async () => {
  client?.close();
  await server?.close();
  await store?.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

/** All responses of one call, or only the first when `firstOnly` (then the call is cancelled). */
async function call(method: string, req: Record<string, unknown>, firstOnly = false): Promise<Resp[]> {
  const out: Resp[] = [];
  const stream = client[method]!({ secrets: { token: TOKEN }, ...req });
  try {
    for await (const r of stream) {
      out.push(r as Resp);
      if (firstOnly) {
        stream.cancel();
        break;
      }
    }
  } catch (err) {
    if ((err as grpc.ServiceError).code !== grpc.status.CANCELLED) throw err;
  }
  return out;
}

const flat = (rs: Resp[]): Ext[] => rs.flatMap((r) => r.block_metadata.map((b): Ext => [Number(b.byte_offset), Number(b.size_bytes)]));

function expectAscendingDisjoint(ex: Ext[]): void {
  for (let i = 1; i < ex.length; i++) expect(ex[i]![0]).toBeGreaterThanOrEqual(ex[i - 1]![0] + ex[i - 1]![1]);
}

function covers(ex: Ext[], byte: number): boolean {
  let lo = 0;
  let hi = ex.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [o, l] = ex[mid]!;
    if (byte < o) hi = mid - 1;
    else if (byte >= o + l) lo = mid + 1;
    else return true;
  }
  return false;
}

describe('CSI SnapshotMetadata over marks', () => {
  it('GetMetadataDelta paged with starting_offset returns the same set as one unpaged call, and covers every changed byte', async () => {
    const req = { base_snapshot_id: `${VOL}/snap0`, target_snapshot_id: `${VOL}/snap2` };
    const unpaged = await call('GetMetadataDelta', { ...req, starting_offset: 0, max_results: 0 });
    expect(unpaged[0]!.block_metadata_type).toBe('VARIABLE_LENGTH');
    expect(unpaged[0]!.volume_capacity_bytes).toBe(String(SIZE));
    const all = flat(unpaged);
    expect(all.length).toBeGreaterThan(20);
    expectAscendingDisjoint(all);

    // A client that takes one small page, hangs up, and resumes from where it stopped.
    const paged: Ext[] = [];
    let cursor = 0;
    for (let i = 0; i < 10_000 && cursor < SIZE; i++) {
      const page = flat(await call('GetMetadataDelta', { ...req, starting_offset: cursor, max_results: 16 }, true));
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(16);
      paged.push(...page);
      const last = page[page.length - 1]!;
      cursor = last[0] + last[1];
    }
    expect(paged).toEqual(all);

    // Truth: every byte that differs between the two marks lies in a reported extent.
    const a = replay(spool.records, SIZE, markSeq.get('snap0')!);
    const b = replay(spool.records, SIZE, markSeq.get('snap2')!);
    const missing: number[] = [];
    for (let i = 0; i < SIZE && missing.length < 5; i++) if (a[i] !== b[i] && !covers(all, i)) missing.push(i);
    expect(missing).toEqual([]);
  });

  it('cuts an extent that straddles starting_offset', async () => {
    const req = { base_snapshot_id: `${VOL}/snap0`, target_snapshot_id: `${VOL}/snap1`, max_results: 0 };
    const all = flat(await call('GetMetadataDelta', { ...req, starting_offset: 0 }));
    const ext = all.find(([, l]) => l >= 8192)!;
    expect(ext).toBeDefined();
    const mid = ext[0] + 4096;
    const rest = flat(await call('GetMetadataDelta', { ...req, starting_offset: mid }));
    expect(rest[0]).toEqual([mid, ext[0] + ext[1] - mid]);
    expect(rest.slice(1)).toEqual(all.slice(all.indexOf(ext) + 1));
  });

  it('GetMetadataAllocated covers every non-zero byte of the snapshot, also when paged', async () => {
    const all = flat(await call('GetMetadataAllocated', { snapshot_id: `${VOL}/snap1`, starting_offset: 0, max_results: 5 }));
    expectAscendingDisjoint(all);
    const img = replay(spool.records, SIZE, markSeq.get('snap1')!);
    const missing: number[] = [];
    for (let i = 0; i < SIZE && missing.length < 5; i++) if (img[i] !== 0 && !covers(all, i)) missing.push(i);
    expect(missing).toEqual([]);
  });

  it('the collector Diff RPC reports the same extents, and marks made over the API are listed and usable', async () => {
    const { collector } = loadProtos();
    const c = new collector(server.address, grpc.credentials.createInsecure()) as unknown as Record<string, Function> & grpc.Client;
    try {
      const unary = <T>(m: string, req: unknown) => new Promise<T>((res, rej) => c[m]!.call(c, req, (e: unknown, v: T) => (e ? rej(e) : res(v))));
      const diff: Ext[] = [];
      for await (const r of c.Diff!.call(c, { volume: VOL, token: TOKEN, from: { mark: 'snap0' }, to: { mark: 'snap2' } }) as AsyncIterable<{ extents: Array<{ offset: string; length: string }> }>) {
        diff.push(...r.extents.map((e): Ext => [Number(e.offset), Number(e.length)]));
      }
      const delta = flat(await call('GetMetadataDelta', { base_snapshot_id: `${VOL}/snap0`, target_snapshot_id: `${VOL}/snap2` }));
      expect(diff).toEqual(delta);

      const made = await unary<{ seq: string; name: string }>('CreateMark', { volume: VOL, token: TOKEN, name: 'api-mark', at: { seq: markSeq.get('snap1')!.toString() } });
      expect(made.seq).toBe(markSeq.get('snap1')!.toString());
      const listed = await unary<{ marks: Array<{ name: string; seq: string }> }>('ListMarks', { volume: VOL, token: TOKEN });
      expect(listed.marks.map((m) => m.name)).toEqual(expect.arrayContaining(['snap0', 'snap1', 'snap2', 'api-mark']));
      const viaApiMark = flat(await call('GetMetadataDelta', { base_snapshot_id: `${VOL}/api-mark`, target_snapshot_id: `${VOL}/snap2` }));
      const viaSnap1 = flat(await call('GetMetadataDelta', { base_snapshot_id: `${VOL}/snap1`, target_snapshot_id: `${VOL}/snap2` }));
      expect(viaApiMark).toEqual(viaSnap1);
      const vols = await unary<{ volumes: Array<{ volume: string; durable_seq: string }> }>('ListVolumes', {});
      expect(vols.volumes.find((v) => v.volume === VOL)?.durable_seq).toBe(spool.lastSeq.toString());
    } finally {
      c.close();
    }
  });

  it('refuses a wrong token, an unknown mark and an offset past the end with clear errors', async () => {
    const codeOf = async (method: string, req: Record<string, unknown>) => {
      try {
        await call(method, req);
        return 'ok';
      } catch (err) {
        return (err as grpc.ServiceError).metadata.get('rewind-error-code')[0];
      }
    };
    expect(await codeOf('GetMetadataAllocated', { snapshot_id: `${VOL}/snap1`, secrets: { token: 'bad' } })).toBe('REWIND_ERR_UNAUTHENTICATED');
    expect(await codeOf('GetMetadataAllocated', { snapshot_id: `${VOL}/nope` })).toBe('REWIND_ERR_NOT_FOUND');
    expect(await codeOf('GetMetadataAllocated', { snapshot_id: `${VOL}/snap1`, starting_offset: SIZE })).toBe('REWIND_ERR_OUT_OF_RANGE');
    expect(await codeOf('GetMetadataDelta', { base_snapshot_id: 'x', target_snapshot_id: `${VOL}/snap1` })).toBe('REWIND_ERR_INVALID_ARGUMENT');
  });
});
