import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, qemuIo, runPeer, requirePeer, startFileExport, type FileExport } from '../helpers/nbd-peers.js';

const SIZE = 64 * 1024 * 1024;

describe('NBD server with qemu-io and nbdinfo as clients', () => {
  let dir: string;
  let tcp: FileExport;
  let unix: FileExport;

  beforeAll(async () => {
    for (const t of ['qemu-io', 'nbdinfo']) requirePeer(t);
    dir = makeTempDir();
    tcp = await startFileExport({ file: path.join(dir, 'tcp.img'), size: SIZE });
    unix = await startFileExport({ file: path.join(dir, 'unix.img'), size: SIZE, name: 'vol', socketPath: path.join(dir, 'nbd.sock') });
  });

  afterAll(async () => {
    await tcp?.close();
    await unix?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads back pattern writes on a new connection at aligned, unaligned and last-byte offsets', async () => {
    await qemuIo(tcp.uri, ['write -P 0x11 0 4096', 'write -P 0x22 12345 7777', `write -P 0x33 ${SIZE - 1} 1`, 'write -P 0x44 1048576 1048576']);
    await qemuIo(tcp.uri, ['read -P 0x11 0 4096', 'read -P 0x22 12345 7777', `read -P 0x33 ${SIZE - 1} 1`, 'read -P 0x44 1048576 1048576', 'read -P 0 4096 8249']);
    // The bytes really are in the backing file.
    const fd = fs.openSync(tcp.file, 'r');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, SIZE - 1);
    fs.closeSync(fd);
    expect(b[0]).toBe(0x33);
  });

  it('a wrong pattern is detected (the check can fail)', async () => {
    await qemuIo(tcp.uri, ['write -P 0x55 65536 4096']);
    await expect(qemuIo(tcp.uri, ['read -P 0x56 65536 4096'])).rejects.toThrow(/qemu-io/);
  });

  it('write -z, discard and write -f (FUA) leave the expected bytes', async () => {
    await qemuIo(tcp.uri, ['write -P 0x66 2097152 2097152']);
    await qemuIo(tcp.uri, ['write -z 2097152 65536', 'discard 3145728 1048576', 'write -f -P 0x77 2162688 512']);
    await qemuIo(tcp.uri, ['read -P 0 2097152 65536', 'read -P 0x77 2162688 512', 'read -P 0x66 2163200 982528', 'read -P 0 3145728 1048576']);
  });

  it('aio_write + aio_flush complete and the data is there afterwards', async () => {
    const cmds: string[] = [];
    for (let i = 0; i < 16; i++) cmds.push(`aio_write -P ${0x80 + i} ${8 * 1048576 + i * 65536} 65536`);
    cmds.push('aio_flush');
    await qemuIo(tcp.uri, cmds);
    const reads: string[] = [];
    for (let i = 0; i < 16; i++) reads.push(`read -P ${0x80 + i} ${8 * 1048576 + i * 65536} 65536`);
    await qemuIo(tcp.uri, reads);
  });

  it('serves a named export over a unix socket', async () => {
    await qemuIo(unix.uri, ['write -P 0x5a 777 1000']);
    await qemuIo(unix.uri, ['read -P 0x5a 777 1000']);
  });

  it('nbdinfo reports size, block sizes and capabilities', async () => {
    const r = await runPeer('nbdinfo', ['--json', tcp.uri]);
    const info = JSON.parse(r.stdout) as { exports: Array<Record<string, unknown>> };
    const e = info.exports[0]!;
    expect(e['export-size']).toBe(SIZE);
    expect(e['block_size_minimum']).toBe(1);
    expect(e['block_size_preferred']).toBe(4096);
    expect(e['block_size_maximum']).toBe(32 * 1024 * 1024);
    expect(e['can_trim']).toBe(true);
    expect(e['can_zero']).toBe(true);
    expect(e['can_multi_conn']).toBe(true);
    expect(e['can_flush']).toBe(true);
    expect(e['can_fua']).toBe(true);
    expect(e['is_read_only']).toBe(false);
    for (const cap of ['trim', 'zero', 'multi-conn', 'flush', 'fua']) await runPeer('nbdinfo', ['--can', cap, tcp.uri]);
  });

  it('nbdinfo --list shows the named export and its description', async () => {
    const r = await runPeer('nbdinfo', ['--list', '--json', unix.uri]);
    const info = JSON.parse(r.stdout) as { exports: Array<Record<string, unknown>> };
    expect(info.exports.map((e) => e['export-name'])).toEqual(['vol']);
    expect(info.exports[0]!['description'] ?? info.exports[0]!['export-description']).toBe('test export vol');
  });

  it('nbdinfo --map agrees with what was written, zeroed and trimmed', async () => {
    const f = await startFileExport({ file: path.join(dir, 'map.img'), size: 16 * 1048576 });
    try {
      await qemuIo(f.uri, ['write -P 0x1 0 1048576', 'write -P 0x2 4194304 1048576', 'discard 4194304 1048576', 'write -P 0x3 8388608 65536', 'write -z 8392704 4096']);
      const r = await runPeer('nbdinfo', ['--map', '--json', f.uri]);
      const map = JSON.parse(r.stdout) as Array<{ offset: number; length: number; type: number }>;
      const typeAt = (off: number): number => map.find((m) => m.offset <= off && off < m.offset + m.length)!.type;
      expect(typeAt(0)).toBe(0); // data
      expect(typeAt(1048575)).toBe(0);
      expect(typeAt(2 * 1048576) & 2).toBe(2); // never written: zero (and hole)
      expect(typeAt(4194304) & 2).toBe(2); // trimmed: reads as zero
      expect(typeAt(8388608)).toBe(0);
      expect(typeAt(8392704) & 2).toBe(2); // write -z
      expect(typeAt(8396800)).toBe(0);
      const total = map.reduce((s, m) => s + m.length, 0);
      expect(total).toBe(16 * 1048576);
      await qemuIo(f.uri, ['read -P 0 4194304 1048576', 'read -P 0x3 8388608 4096', 'read -P 0 8392704 4096']);
    } finally {
      await f.close();
    }
  });
});
