import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../core/errors.js';
import { RecordKind, type JournalRecord } from '../../journal/record.js';
import { CollectorApi } from '../../rpc/collector-api.js';
import { CollectorStore } from '../store/index.js';
import { startCollectorGrpc, type CollectorGrpcServer } from './server.js';

const S = 1_000_000_000n;
const T0 = 1_800_000_000n * S;
const TOKEN = 'plan-volume-token-0123456789';
let dir: string;
let store: CollectorStore;
let server: CollectorGrpcServer;
let api: CollectorApi;
let seq = 0n;
const write = (off: number, len: number, at: bigint): JournalRecord => ({ kind: RecordKind.Write, flags: 0, seq: ++seq, time: at, offset: BigInt(off), length: len, payload: Buffer.alloc(len, 9) });

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-plan-rpc-'));
  store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
  const v = await store.createVolume('a', 1n << 20n, { token: TOKEN });
  await v.append([write(0, 4096, T0 + S), write(0, 4096, T0 + 2n * S), write(0, 4096, T0 + 3n * S), write(4096, 8192, T0 + 25n * S)]);
  server = await startCollectorGrpc({ store, listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
  api = new CollectorApi({ address: server.address, allowPlaintext: true });
});
afterAll(async () => {
  api?.close();
  await server?.close();
  await store?.close();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

describe('GetPlan: the planner over gRPC, for the controller', () => {
  it('answers with the same plan as the HTTP API, behind the volume token', async () => {
    const p = await api.plan('a', TOKEN, { from: String(T0), to: String(T0 + 29n * S), rpo: '10s', bandwidth: '8kbit' });
    expect(p).toMatchObject({ volume: 'a', bytes: { written: 20480, unique: 12288 }, window: { intervals: 3, intervalNs: '10000000000' } });
    expect(p.rpo!.recommendedBandwidth).toBeCloseTo(614.4, 6);
    expect(p.bandwidth).toMatchObject({ achievedRpoSeconds: 2.288, keepsUp: true });
    // An empty query: the whole history, bytes and rates only.
    const all = await api.plan('a', TOKEN);
    expect(all.rpo).toBeUndefined();
    expect(all.bytes.written).toBe(20480);
  });

  it('keeps the planner\'s codes: a bad query, an unknown volume, a wrong token', async () => {
    await expect(api.plan('a', TOKEN, { rpo: '0s' })).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT, message: expect.stringMatching(/rpo must be more than 0/) });
    await expect(api.plan('a', TOKEN, { from: 'mark:none' })).rejects.toMatchObject({ code: ErrorCodes.NOT_FOUND });
    await expect(api.plan('nope', TOKEN, {})).rejects.toMatchObject({ code: ErrorCodes.NOT_FOUND });
    await expect(api.plan('a', 'wrong-token-0123456789', {})).rejects.toMatchObject({ code: ErrorCodes.UNAUTHENTICATED });
  });
});
