import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, type RewindError } from '../../core/errors.js';
import { encodeHeader, RecordKind, type JournalRecord } from '../../journal/record.js';
import { CollectorApi } from '../../rpc/collector-api.js';
import type { AppendRequestMsg, AppendResponseMsg, EntryMsg } from '../../rpc/messages.js';
import { loadProtos } from '../../rpc/proto.js';
import { ERROR_CODE_KEY } from '../../rpc/status.js';
import { CollectorStore } from '../store/index.js';
import { startCollectorGrpc, type CollectorGrpcServer } from './server.js';

const ADMIN = 'admin-token-0123456789abcdef';
const TOKEN = 'volume-token-0123456789';
const SIZE = 1n << 20n;

type Duplex = grpc.ClientDuplexStream<AppendRequestMsg, AppendResponseMsg>;

/** An Append stream sending Hello and, once welcomed, one write; resolves with its end. */
async function appendOnce(address: string, volume: string, token: string): Promise<{ welcome?: AppendResponseMsg; err?: grpc.ServiceError }> {
  const { collector } = loadProtos();
  const client = new collector(address, grpc.credentials.createInsecure()) as unknown as { Append(): Duplex; close(): void };
  const call = client.Append();
  let welcome: AppendResponseMsg | undefined;
  const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on('error', (e) => resolve(e as grpc.ServiceError));
    call.on('end', () => resolve(undefined));
  });
  call.on('data', (m: AppendResponseMsg) => {
    if (m.msg === 'welcome') {
      welcome = m;
      const seq = BigInt(m.welcome.durable_seq) + 1n;
      const rec: JournalRecord = { kind: RecordKind.Write, flags: 0, seq, time: seq * 1_000_000n, offset: 0n, length: 4, payload: Buffer.from([1, 2, 3, 4]) };
      const e: EntryMsg = { seq: rec.seq.toString(), time: rec.time.toString(), kind: rec.kind, flags: 0, offset: '0', length: 4, payload: rec.payload, crc: encodeHeader(rec).readUInt32LE(44) };
      call.write({ msg: 'batch', batch: { entries: [e] } });
    } else {
      call.end();
    }
  });
  call.write({ msg: 'hello', hello: { volume, size: SIZE.toString(), generation: '0', token, last_durable_seq: '0' } });
  const err = await ended;
  client.close();
  return { welcome, err };
}

const refusal = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a refusal'); }, (e: RewindError) => e);

describe('collector with an admin token', () => {
  let dir: string;
  let store: CollectorStore;
  let server: CollectorGrpcServer;
  let api: CollectorApi;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-admin-'));
    store = await CollectorStore.open(dir);
    server = await startCollectorGrpc({ store, listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true, adminToken: ADMIN });
    api = new CollectorApi({ address: server.address, allowPlaintext: true });
  });
  afterAll(async () => {
    api.close();
    await server.close();
    await store.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('refuses RegisterVolume and DeleteVolume without the admin token, or with a wrong one, as UNAUTHENTICATED', async () => {
    for (const admin of ['', 'wrong-admin-token-000000']) {
      for (const e of [await refusal(api.registerVolume(admin, 'v-auth', SIZE, TOKEN)), await refusal(api.deleteVolume(admin, 'v-auth'))]) {
        expect(e.code).toBe(ErrorCodes.ADMIN_UNAUTHENTICATED);
        expect((e.details as { grpcCode?: number }).grpcCode).toBe(grpc.status.UNAUTHENTICATED);
        expect(e.message).toMatch(admin ? /admin token was refused/ : /admin token is missing/);
        expect(e.message).toMatch(/--admin-token-file/);
      }
    }
    expect(store.volume('v-auth')).toBeUndefined();
  });

  it('refuses a Hello for an unregistered volume with NOT_FOUND, and takes it once registered', async () => {
    const before = await appendOnce(server.address, 'v-hello', TOKEN);
    expect(before.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(before.err?.metadata.get(ERROR_CODE_KEY)[0]).toBe(ErrorCodes.NOT_FOUND);
    expect(before.err?.details).toMatch(/ProtectedVolume must be registered first/);
    expect(store.volume('v-hello')).toBeUndefined();

    const r = await api.registerVolume(ADMIN, 'v-hello', SIZE, TOKEN);
    expect(r).toMatchObject({ created: true, tokenRotated: false, status: { volume: 'v-hello', size: SIZE, durableSeq: 0n } });
    const after = await appendOnce(server.address, 'v-hello', TOKEN);
    expect(after.err).toBeUndefined();
    expect(after.welcome?.welcome?.durable_seq).toBe('0');
    expect(store.volume('v-hello')!.durableSeq).toBe(1n);
  });

  it('RegisterVolume is idempotent, rotates a different token, and refuses another size', async () => {
    expect((await api.registerVolume(ADMIN, 'v-reg', SIZE, TOKEN)).created).toBe(true);
    const again = await api.registerVolume(ADMIN, 'v-reg', SIZE, TOKEN);
    expect(again).toMatchObject({ created: false, tokenRotated: false });
    expect(await api.registerVolume(ADMIN, 'v-reg', 0n, TOKEN)).toMatchObject({ created: false, tokenRotated: false });
    expect((await refusal(api.registerVolume(ADMIN, 'v-reg', SIZE * 2n, TOKEN))).code).toBe(ErrorCodes.ALREADY_EXISTS);
    expect((await refusal(api.registerVolume(ADMIN, 'v-new', 0n, TOKEN))).code).toBe(ErrorCodes.INVALID_ARGUMENT);
    expect((await refusal(api.registerVolume(ADMIN, 'v-new', SIZE, 'short'))).code).toBe(ErrorCodes.INVALID_ARGUMENT);

    const next = 'volume-token-rotated-0123';
    expect(await api.registerVolume(ADMIN, 'v-reg', SIZE, next)).toMatchObject({ created: false, tokenRotated: true });
    expect((await refusal(api.status('v-reg', TOKEN))).code).toBe(ErrorCodes.UNAUTHENTICATED);
    expect((await api.status('v-reg', next)).volume).toBe('v-reg');
    expect((await appendOnce(server.address, 'v-reg', TOKEN)).err?.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('DeleteVolume removes the volume and its history, idempotently', async () => {
    await api.registerVolume(ADMIN, 'v-del', SIZE, TOKEN);
    expect((await appendOnce(server.address, 'v-del', TOKEN)).err).toBeUndefined();
    expect(await api.deleteVolume(ADMIN, 'v-del')).toEqual({ deleted: true });
    expect(await api.deleteVolume(ADMIN, 'v-del')).toEqual({ deleted: false });
    expect((await refusal(api.status('v-del', TOKEN))).code).toBe(ErrorCodes.NOT_FOUND);
    expect((await api.listVolumes()).map((v) => v.volume)).not.toContain('v-del');
    // Registered again, it starts from an empty history.
    expect((await api.registerVolume(ADMIN, 'v-del', SIZE, TOKEN)).status.durableSeq).toBe(0n);
  });

  it('marks by id over the API: one mark per id, listed with it, restorable by it, deleted by it', async () => {
    await api.registerVolume(ADMIN, 'v-marks', SIZE, TOKEN);
    expect((await appendOnce(server.address, 'v-marks', TOKEN)).err).toBeUndefined();
    const m1 = await api.createMark('v-marks', TOKEN, 'before', undefined, { id: 'uid-1' });
    expect(m1).toMatchObject({ name: 'before', id: 'uid-1', seq: 1n });
    expect((await appendOnce(server.address, 'v-marks', TOKEN)).err).toBeUndefined();
    // A controller restarted mid-reconcile asks again: the same mark, not one at seq 2.
    expect(await api.createMark('v-marks', TOKEN, 'before', undefined, { id: 'uid-1' })).toEqual(m1);
    await api.createMark('v-marks', TOKEN, 'plain');
    expect(await api.listMarks('v-marks', TOKEN)).toEqual([m1, expect.objectContaining({ name: 'plain', seq: 2n })]);
    expect((await api.listMarks('v-marks', TOKEN))[1]).not.toHaveProperty('id');

    const out = path.join(dir, 'by-id.img');
    await api.restoreToFile('v-marks', TOKEN, { markId: 'uid-1' }, out);
    expect((await fsp.readFile(out)).subarray(0, 4)).toEqual(Buffer.from([1, 2, 3, 4]));

    expect(await api.deleteMark('v-marks', TOKEN, 'uid-1')).toEqual({ deleted: true });
    expect(await api.deleteMark('v-marks', TOKEN, 'uid-1')).toEqual({ deleted: false });
    expect((await api.listMarks('v-marks', TOKEN)).map((m) => m.name)).toEqual(['plain']);
    expect((await refusal(api.restoreToFile('v-marks', TOKEN, { markId: 'uid-1' }, out))).code).toBe(ErrorCodes.NOT_FOUND);
    expect((await refusal(api.restoreToFile('v-marks', TOKEN, { mark: 'before' }, out))).code).toBe(ErrorCodes.NOT_FOUND);
    expect((await refusal(api.deleteMark('v-marks', 'wrong-token-000000000', 'plain'))).code).toBe(ErrorCodes.UNAUTHENTICATED);
  });
});

describe('collector without an admin token', () => {
  let dir: string;
  let store: CollectorStore;
  let server: CollectorGrpcServer;
  let api: CollectorApi;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-noadmin-'));
    store = await CollectorStore.open(dir);
    server = await startCollectorGrpc({ store, listen: { path: path.join(dir, 'c.sock') }, allowPlaintext: true });
    api = new CollectorApi({ address: server.address, allowPlaintext: true });
  });
  afterAll(async () => {
    api.close();
    await server.close();
    await store.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('creates a volume on its first Hello, as rewind up relies on', async () => {
    expect((await appendOnce(server.address, 'v-first', TOKEN)).err).toBeUndefined();
    expect(store.volume('v-first')!.durableSeq).toBe(1n);
  });

  it('lets RegisterVolume create and confirm, but not rotate or delete', async () => {
    expect(await api.registerVolume('', 'v-reg', SIZE, TOKEN)).toMatchObject({ created: true });
    expect(await api.registerVolume('', 'v-reg', SIZE, TOKEN)).toMatchObject({ created: false, tokenRotated: false });
    const rotate = await refusal(api.registerVolume('', 'v-reg', SIZE, 'another-token-0123456789'));
    expect(rotate.code).toBe(ErrorCodes.ADMIN_UNAUTHENTICATED);
    expect(rotate.message).toMatch(/runs without one; start it with --admin-token-file/);
    expect((await refusal(api.deleteVolume('anything-at-all-0000', 'v-reg'))).code).toBe(ErrorCodes.ADMIN_UNAUTHENTICATED);
    expect(store.volume('v-reg')!.token).toBe(TOKEN);
  });
});
