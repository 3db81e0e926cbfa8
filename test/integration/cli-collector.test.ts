import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, type RewindError } from '../../src/core/errors.js';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import { runRewind, startRewind } from '../helpers/rewind-process.js';

const ADMIN = 'collector-admin-token-0123456789';
const TOKEN = 'volume-token-abcdefghijklmnop';

describe('rewind collector', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-collector-'));
    await fs.writeFile(path.join(dir, 'admin'), ADMIN + '\n', { mode: 0o600 });
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses to start without exactly one of --tls-dir and --allow-plaintext, or with an unreadable admin token file', async () => {
    const base = ['collector', '--data', path.join(dir, 'x'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0'];
    const neither = await runRewind(base);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/REWIND_ERR_INVALID_ARGUMENT: give exactly one of --tls-dir DIR and --allow-plaintext/);
    const noFile = await runRewind([...base, '--allow-plaintext', '--admin-token-file', path.join(dir, 'missing')]);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toMatch(/--admin-token-file .*missing cannot be read \(ENOENT\)/);
    const noGrpc = await runRewind(['collector', '--data', path.join(dir, 'x'), '--http', '127.0.0.1:0', '--allow-plaintext']);
    expect(noGrpc.stderr).toMatch(/--grpc is required/);
  });

  it('serves gRPC on port 0 with the admin token and the HTTP API, keeps registered volumes across a restart, and exits 0 on SIGTERM', async () => {
    const args = ['collector', '--data', path.join(dir, 'data'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'admin'), '--allow-plaintext'];
    const c = await startRewind(args);
    expect(c.info.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(c.info.grpc).not.toBe('127.0.0.1:0');
    const api = new CollectorApi({ address: c.info.grpc!, allowPlaintext: true });
    try {
      const refused = await api.registerVolume('', 'data', 1n << 20n, TOKEN).catch((e: RewindError) => e);
      expect((refused as RewindError).code).toBe(ErrorCodes.ADMIN_UNAUTHENTICATED);
      expect((await api.registerVolume(ADMIN, 'data', 1n << 20n, TOKEN)).created).toBe(true);
      const listed = (await (await fetch(`${c.info.http}/v1/volumes`)).json()) as { volumes: Array<{ name: string }> };
      expect(listed.volumes.map((v) => v.name)).toEqual(['data']);
      expect((await fetch(`${c.info.http}/metrics`)).status).toBe(200);
    } finally {
      api.close();
    }
    expect(await c.stop()).toBe(0);

    // unix socket this time; the volume is still there.
    const sock = path.join(dir, 'grpc.sock');
    const again = await startRewind(['collector', '--data', path.join(dir, 'data'), '--grpc', `unix:${sock}`, '--http', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'admin'), '--allow-plaintext']);
    expect(again.info.grpc).toBe(`unix:${sock}`);
    const api2 = new CollectorApi({ address: again.info.grpc!, allowPlaintext: true });
    try {
      expect(await api2.registerVolume(ADMIN, 'data', 0n, TOKEN)).toMatchObject({ created: false, tokenRotated: false });
      expect((await api2.status('data', TOKEN)).size).toBe(1n << 20n);
    } finally {
      api2.close();
    }
    expect(await again.stop('SIGINT')).toBe(0);
  });
});
