import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, type RewindError } from '../../core/errors.js';
import { CollectorApi } from '../../rpc/collector-api.js';
import type { AppendRequestMsg, AppendResponseMsg } from '../../rpc/messages.js';
import { loadProtos } from '../../rpc/proto.js';
import { ERROR_CODE_KEY } from '../../rpc/status.js';
import { CollectorStore } from '../store/index.js';
import { isLoopbackPeer } from './auth.js';
import { startCollectorGrpc, type CollectorGrpcServer } from './server.js';

/**
 * Who may create a volume on a collector without an admin token (`rewind up`, a bare
 * `rewind collector`): only a client on this machine (a unix socket or loopback). A
 * client from elsewhere with any token must not make one appear — that would let anyone
 * who reaches the port fill the collector's disk under names of their choosing.
 *
 * "Elsewhere" is this machine's own non-loopback address, so the peer the server sees is
 * not 127.0.0.1 / ::1.
 */
const SIZE = 1n << 20n;
const TOKEN = 'any-token-a-stranger-made-up';

function externalAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this host has no non-loopback IPv4 address; the remote-client cases need one (a network interface other than lo)');
}

type Duplex = grpc.ClientDuplexStream<AppendRequestMsg, AppendResponseMsg>;

/** Hello for `volume`; resolves with the Welcome, or the error the stream ended with. */
async function hello(address: string, volume: string): Promise<{ welcome?: AppendResponseMsg; err?: grpc.ServiceError }> {
  const { collector } = loadProtos();
  const client = new collector(address, grpc.credentials.createInsecure()) as unknown as { Append(): Duplex; close(): void };
  const call = client.Append();
  const out = await new Promise<{ welcome?: AppendResponseMsg; err?: grpc.ServiceError }>((resolve) => {
    call.on('data', (m: AppendResponseMsg) => {
      if (m.msg === 'welcome') {
        resolve({ welcome: m });
        call.end();
      }
    });
    call.on('error', (e) => resolve({ err: e as grpc.ServiceError }));
    call.on('end', () => resolve({}));
    call.write({ msg: 'hello', hello: { volume, size: SIZE.toString(), generation: '0', token: TOKEN, last_durable_seq: '0' } });
  });
  client.close();
  return out;
}

const refusal = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a refusal'); }, (e: RewindError) => e);

describe('collector without an admin token creates volumes only for local clients', () => {
  let dir: string;
  let store: CollectorStore;
  let tcp: CollectorGrpcServer;
  let unix: CollectorGrpcServer;
  let remote: string;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-create-'));
    store = await CollectorStore.open(path.join(dir, 'store'));
    tcp = await startCollectorGrpc({ store, listen: { host: '0.0.0.0', port: 0 }, allowPlaintext: true });
    unix = await startCollectorGrpc({ store, listen: { path: path.join(dir, 'c.sock') }, allowPlaintext: true });
    remote = `${externalAddress()}:${tcp.port}`;
  });
  afterAll(async () => {
    await tcp.close();
    await unix.close();
    await store.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('refuses a Hello from another machine for an unknown volume, creating nothing, and says what to do', async () => {
    const { welcome, err } = await hello(remote, 'stranger-vol');
    expect(welcome).toBeUndefined();
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err?.metadata.get(ERROR_CODE_KEY)[0]).toBe(ErrorCodes.PERMISSION_DENIED);
    expect(err?.details).toMatch(/--admin-token-file/);
    expect(err?.details).toMatch(/RegisterVolume/);
    expect(store.volume('stranger-vol')).toBeUndefined();
  });

  it('refuses RegisterVolume from another machine without an admin token, creating nothing', async () => {
    const api = new CollectorApi({ address: remote, allowPlaintext: true });
    try {
      const e = await refusal(api.registerVolume('', 'stranger-reg', SIZE, TOKEN));
      expect(e.code).toBe(ErrorCodes.PERMISSION_DENIED);
      expect(e.message).toMatch(/--admin-token-file/);
    } finally {
      api.close();
    }
    expect(store.volume('stranger-reg')).toBeUndefined();
  });

  it('creates a volume on the first Hello over loopback and over a unix socket, as rewind up relies on', async () => {
    expect((await hello(`127.0.0.1:${tcp.port}`, 'local-tcp')).welcome).toBeDefined();
    expect((await hello(unix.address, 'local-unix')).welcome).toBeDefined();
    expect(store.volume('local-tcp')).toBeDefined();
    expect(store.volume('local-unix')).toBeDefined();
  });

  it('lets a remote shipper stream to a volume that exists, with its token', async () => {
    const { welcome, err } = await hello(remote, 'local-tcp');
    expect(err).toBeUndefined();
    expect(welcome?.msg).toBe('welcome');
  });
});

describe('isLoopbackPeer', () => {
  it('reads the peers grpc-js reports, and takes an address it cannot read as remote', () => {
    for (const p of ['127.0.0.1:5000', '127.8.9.10:1', '::1:5000', '[::1]:5000', '::ffff:127.0.0.1:5000']) expect(isLoopbackPeer(p), p).toBe(true);
    for (const p of ['192.0.2.2:5000', 'fd00::2:5000', '::ffff:192.0.2.2:5000', 'unknown', '', '128.0.0.1:1', 'localhost:5000']) expect(isLoopbackPeer(p), p).toBe(false);
  });
});
