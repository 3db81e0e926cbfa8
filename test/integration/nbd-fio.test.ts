import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, requirePeer, runPeer, startFileExport, type FileExport } from '../helpers/nbd-peers.js';

const SIZE = 256 * 1024 * 1024;

describe('NBD server under fio with crc32c verification', () => {
  let dir: string;
  let exp: FileExport;

  beforeAll(async () => {
    requirePeer('fio');
    dir = makeTempDir();
    exp = await startFileExport({ file: path.join(dir, 'fio.img'), size: SIZE });
  });

  afterAll(async () => {
    await exp?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // Two jobs = two NBD connections, each in its own 128 MiB half via offset_increment.
  const base = (rw: string, bs: string, size: string) => [
    '--name=verify', '--ioengine=nbd', `--rw=${rw}`, `--bs=${bs}`, '--iodepth=16', '--numjobs=2',
    '--offset_increment=128M', `--size=${size}`, '--verify=crc32c', '--verify_fatal=1', '--do_verify=1',
    '--group_reporting', '--output-format=json',
  ];

  for (const [label, rw, bs, size] of [
    ['random 4 KiB writes', 'randwrite', '4k', '16M'],
    ['sequential 1 MiB writes', 'write', '1M', '128M'],
  ] as const) {
    it(`${label} at iodepth 16 over 2 connections verify`, async () => {
      const r = await runPeer('fio', [...base(rw, bs, size), `--uri=${exp.uri}`], { timeoutMs: 150_000 });
      const job = (JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: Array<{ error: number; write: { io_bytes: number }; read: { io_bytes: number } }> }).jobs[0]!;
      expect(job.error).toBe(0);
      const sizeBytes = size === '16M' ? 16 * 1048576 : 128 * 1048576;
      expect(job.write.io_bytes).toBe(2 * sizeBytes);
      expect(job.read.io_bytes).toBe(2 * sizeBytes); // verify pass read everything back
    });
  }
});
