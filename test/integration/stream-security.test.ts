import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRewindError } from '../../src/core/errors.js';
import { startCollectorGrpc, type CollectorGrpcServer } from '../../src/collector/grpc/server.js';
import { ERROR_CODE_KEY, fromGrpcError } from '../../src/rpc/status.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { loadTlsSecretDir } from '../../src/collector/security.js';
import { CollectorStore } from '../../src/collector/store/index.js';
import { RecordKind } from '../../src/journal/record.js';
import { Shipper } from '../../src/ship/shipper.js';
import { clientTlsFromSecretDir, collectorClient, type CollectorTarget } from '../../src/rpc/transport.js';
import { makeCerts, MemorySpool, waitFor, type TestCerts } from '../helpers/stream-fixtures.js';

const SIZE = 1024 * 1024;
let dir: string;
let store: CollectorStore;
let certs: TestCerts;
const servers: CollectorGrpcServer[] = [];

beforeAll(async () => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
  } catch {
    throw new Error('openssl is required to make test certificates (apt-get install openssl)');
  }
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-stream-sec-'));
  await fsp.mkdir(path.join(dir, 'pki'));
  certs = makeCerts(path.join(dir, 'pki'));
  store = await CollectorStore.open(path.join(dir, 'data'));
});

afterAll(async () => {
  for (const s of servers) await s.close();
  await store?.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function shipOne(target: CollectorTarget, volume: string, token: string): Promise<Shipper> {
  const spool = new MemorySpool();
  await spool.append({ kind: RecordKind.Write, flags: 0, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 1) });
  const shipper = new Shipper({ spool, volume, size: BigInt(SIZE), token, target, backoff: { initialMs: 20, maxMs: 200 } });
  shipper.start();
  return shipper;
}

describe('stream security', () => {
  it('refuses to start without certificates unless plaintext is explicitly allowed', async () => {
    await expect(startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 } })).rejects.toSatisfy(
      (e) => isRewindError(e, 'REWIND_ERR_INVALID_ARGUMENT') && /allowPlaintext/.test((e as Error).message),
    );
  });

  it('refuses a shipper with the wrong token with REWIND_ERR_UNAUTHENTICATED', async () => {
    const server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
    servers.push(server);
    const target = { address: server.address, allowPlaintext: true };
    const good = await shipOne(target, 'vol-tok', 'right-token');
    await good.drain(AbortSignal.timeout(10_000));
    await good.stop();

    const bad = await shipOne(target, 'vol-tok', 'wrong-token');
    try {
      await waitFor(() => bad.status().lastError !== undefined, 10_000, 'the refusal');
      const st = bad.status();
      expect(st.connected).toBe(false);
      expect(st.ackedSeq).toBe(0n);
      expect(st.lastError!.code).toBe('REWIND_ERR_UNAUTHENTICATED');
      expect(st.lastError!.message).toMatch(/token for volume "vol-tok" was refused/);
    } finally {
      await bad.stop();
    }
    // Unary calls check the token too, and the code travels in the status metadata.
    const client = collectorClient(target);
    try {
      const err = await new Promise<unknown>((res) =>
        (client.GetVolumeStatus as (r: unknown, cb: (e: unknown) => void) => void)({ volume: 'vol-tok', token: 'nope' }, (e) => res(e)),
      );
      expect((err as { metadata: { get(k: string): unknown[] } }).metadata.get(ERROR_CODE_KEY)[0]).toBe('REWIND_ERR_UNAUTHENTICATED');
      expect(fromGrpcError(err, 'status').code).toBe('REWIND_ERR_UNAUTHENTICATED');
    } finally {
      client.close();
    }
  });

  it('refuses an unknown volume when the collector does not create volumes', async () => {
    const server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true, createVolumes: false });
    servers.push(server);
    const s = await shipOne({ address: server.address, allowPlaintext: true }, 'vol-never', 't');
    try {
      await waitFor(() => s.status().lastError !== undefined, 10_000, 'the refusal');
      expect(s.status().lastError!.code).toBe('REWIND_ERR_NOT_FOUND');
      expect(store.volume('vol-never')).toBeUndefined();
    } finally {
      await s.stop();
    }
  });

  it('with mTLS on, ships for a client with a trusted certificate and refuses one without a certificate or with a foreign one', async () => {
    // The server reads its material the way a mounted Kubernetes TLS secret presents it.
    const secret = path.join(dir, 'secret');
    await fsp.mkdir(secret);
    await fsp.writeFile(path.join(secret, 'tls.crt'), certs.serverCert);
    await fsp.writeFile(path.join(secret, 'tls.key'), certs.serverKey);
    await fsp.writeFile(path.join(secret, 'ca.crt'), certs.ca);
    const server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, tls: { ...loadTlsSecretDir(secret), requireClientCert: true } });
    servers.push(server);
    const address = `localhost:${server.port}`;

    const clientSecret = path.join(dir, 'client-secret');
    await fsp.mkdir(clientSecret);
    await fsp.writeFile(path.join(clientSecret, 'tls.crt'), certs.clientCert);
    await fsp.writeFile(path.join(clientSecret, 'tls.key'), certs.clientKey);
    await fsp.writeFile(path.join(clientSecret, 'ca.crt'), certs.ca);
    const ok = await shipOne({ address, tls: clientTlsFromSecretDir(clientSecret) }, 'vol-tls', 'tls-token');
    try {
      await ok.drain(AbortSignal.timeout(15_000));
      expect(ok.status().ackedSeq).toBe(1n);
    } finally {
      await ok.stop();
    }

    const cases = [
      { tls: { ca: certs.ca }, error: /requires a client certificate and none was presented/ },
      { tls: { ca: certs.ca, cert: certs.rogueCert, key: certs.rogueKey }, error: /./ },
    ];
    for (const { tls, error } of cases) {
      const s = await shipOne({ address, tls }, 'vol-tls2', 'tls-token');
      try {
        await waitFor(() => s.status().reconnects >= 2, 15_000, 'refused reconnects');
        const st = s.status();
        expect(st.connected).toBe(false);
        expect(st.ackedSeq).toBe(0n);
        expect(st.lastError?.message).toMatch(error);
        expect(store.volume('vol-tls2')).toBeUndefined();
      } finally {
        await s.stop();
      }
    }
  });

  it('a client without TLS config refuses to connect in plaintext unless told to', () => {
    expect(() => collectorClient({ address: '127.0.0.1:1' })).toThrow(/plaintext not allowed/);
  });
});
