import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, isRewindError } from '../../src/core/errors.js';
import { CollectorApi } from '../../src/rpc/collector-api.js';
import type { MarkInfo } from '../../src/rpc/api-types.js';
import { peer, runRewind, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

const SIZE = 16 * 1024 * 1024;
const ADMIN = 'serve-remote-admin-token-0123456789';
const TOKEN = 'serve-remote-volume-token-abcdefgh';
const MARK_ID = '8d3c2f0e-6a1b-4c7e-9f21-3b5a7d9e0c14';
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** A mark "now" is refused while the node still sends its initial copy: ask until it is done. */
async function markWhenExact(api: CollectorApi, name: string): Promise<MarkInfo> {
  for (let i = 0; ; i++) {
    try {
      return await api.createMark('data', TOKEN, name, undefined, { id: MARK_ID });
    } catch (err) {
      if (!isRewindError(err, ErrorCodes.POINT_NOT_EXACT) || i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('rewind serve --collector: the node side in one process, history in a rewind collector', () => {
  let dir: string;
  let collector: RewindProcess;
  let api: CollectorApi;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-serve-remote-'));
    await fs.writeFile(path.join(dir, 'admin'), ADMIN + '\n', { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'token'), TOKEN + '\n', { mode: 0o600 });
    collector = await startRewind(['collector', '--data', path.join(dir, 'collector'), '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'admin'), '--allow-plaintext']);
    api = new CollectorApi({ address: collector.info.grpc!, allowPlaintext: true });
  });
  afterAll(async () => {
    api?.close();
    await collector?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses --durability flush-sync without --collector, and --collector without a token file', async () => {
    const base = ['serve', '--backing', path.join(dir, 'x.img'), '--size', '1M', '--spool', path.join(dir, 'x-spool'), '--listen', `unix:${path.join(dir, 'x.sock')}`];
    const noCollector = await runRewind([...base, '--durability', 'flush-sync']);
    expect(noCollector.code).toBe(2);
    expect(noCollector.stderr).toMatch(/--durability flush-sync needs a collector/);
    const noToken = await runRewind([...base, '--collector', collector.info.grpc!, '--volume', 'data', '--collector-plaintext']);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/--token-file is required/);
  });

  it('ships qemu-io writes (flush-sync), and a mark by id restores them byte for byte from the collector', async () => {
    expect((await api.registerVolume(ADMIN, 'data', BigInt(SIZE), TOKEN)).created).toBe(true);
    const img = path.join(dir, 'data.img');
    const serve = await startRewind([
      'serve', '--backing', img, '--size', String(SIZE), '--spool', path.join(dir, 'spool'), '--listen', `unix:${path.join(dir, 'nbd.sock')}`,
      '--collector', collector.info.grpc!, '--volume', 'data', '--token-file', path.join(dir, 'token'), '--collector-plaintext',
    ]);
    try {
      expect(serve.info).toMatchObject({ collector: collector.info.grpc, volume: 'data', durability: 'flush-sync' });
      // qemu-io FLUSHes at exit; in flush-sync that FLUSH completes once the collector holds the write.
      await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 1M', serve.info.nbd!]);
      const expected = Buffer.alloc(SIZE);
      expected.fill(0xab, 0, 1 << 20);

      const m = await markWhenExact(api, 'after-write');
      expect(m).toMatchObject({ name: 'after-write', id: MARK_ID });
      // Asked again (a controller after a restart): the same mark.
      expect(await api.createMark('data', TOKEN, 'after-write', undefined, { id: MARK_ID })).toEqual(m);
      expect((await api.listMarks('data', TOKEN)).filter((x) => x.id === MARK_ID)).toEqual([m]);

      const out = path.join(dir, 'restored.img');
      await api.restoreToFile('data', TOKEN, { markId: MARK_ID }, out);
      expect(await sha256File(out)).toBe(sha(expected));
      expect(await sha256File(img)).toBe(sha(expected));
      const st = await api.status('data', TOKEN);
      expect(st.writerConnected).toBe(true);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
    expect((await api.status('data', TOKEN)).writerConnected).toBe(false);
  });
});
