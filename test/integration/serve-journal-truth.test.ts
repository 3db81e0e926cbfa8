import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as C from '../../src/nbd/constants.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { expectReplayEqualsExport, peer, runRewind, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

/**
 * Issue 2 on the journaled server (`rewind serve`), for what pit-replay.test.ts does not run
 * there: qemu-img convert both ways, nbdinfo --map after writes, zeroes and trims, fio
 * sequential 1 MiB at QD16 over two connections, and the hostile writes that reach the
 * journal (a payload cut off, out of range, zero length; CACHE). After each, the full replay
 * of the spool equals the export. At the end, after a clean stop, the journal verifies clean,
 * `journal dump` lists every record (human and JSON) and the backing file equals the replay.
 */
const SIZE = 64 * 1024 * 1024;

interface MapEntry { offset: number; length: number; type: number }

describe('rewind serve: every peer leaves a journal that replays to the export', () => {
  let dir: string;
  let srv: RewindProcess;
  let uri: string;
  let sock: string;
  const spool = () => path.join(dir, 'spool');
  const replayEqualsExport = () => expectReplayEqualsExport(spool(), SIZE, uri, path.join(dir, 'replay.img'));

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-serve-truth-'));
    sock = path.join(dir, 'nbd.sock');
    srv = await startRewind(['serve', '--backing', path.join(dir, 'disk.img'), '--size', String(SIZE), '--spool', spool(), '--listen', `unix:${sock}`]);
    uri = srv.info.nbd!;
  });

  afterAll(async () => {
    await srv?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('qemu-img convert into the export and back out equals the source', async () => {
    const src = path.join(dir, 'src.img');
    const data = Buffer.alloc(6 << 20).map(() => (Math.random() * 256) | 0);
    data.fill(0, 2 << 20, 3 << 20); // a zero run for convert to send as zeroes
    await fs.writeFile(src, data);
    await fs.truncate(src, SIZE);
    await peer('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, uri]);
    const out = path.join(dir, 'out.img');
    await peer('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, out]);
    await peer('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, out]);
    expect(await sha256File(out)).toBe(await sha256File(src));
    await replayEqualsExport();
  });

  it('nbdinfo --map reports written ranges as data and zeroed or trimmed ranges as zero', async () => {
    await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 0 1M', '-c', 'write -z 256k 128k', '-c', 'discard 512k 256k', uri]);
    const map = JSON.parse(await peer('nbdinfo', ['--map', '--json', uri])) as MapEntry[];
    const typeAt = (off: number) => map.find((e) => e.offset <= off && off < e.offset + e.length)!.type;
    expect(map.at(-1)!.offset + map.at(-1)!.length).toBe(SIZE);
    // type: 1 = hole, 2 = zero. qemu-io's write -z sends NO_HOLE (no -u): zero, never a hole.
    expect(typeAt(0)).toBe(0);
    expect(typeAt(256 * 1024)).toBe(2);
    expect(typeAt(640 * 1024) & 2).toBe(2);
    expect(typeAt(900 * 1024)).toBe(0);
    await peer('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 0 256k', '-c', 'read -P 0 256k 128k', '-c', 'read -P 0 512k 256k', '-c', 'read -P 0x5a 768k 256k', uri]);
    await replayEqualsExport();
  });

  it('fio sequential 1 MiB writes at QD16 over two connections, verified by crc32c', async () => {
    await peer('fio', [
      '--name=seq', '--ioengine=nbd', `--uri=${uri}`, '--rw=write', '--bs=1M', '--iodepth=16', '--numjobs=2',
      '--size=16M', '--offset=16M', '--offset_increment=24M', '--verify=crc32c', '--do_verify=1', '--verify_state_save=0',
    ]);
    await replayEqualsExport();
  });

  it('a write cut off mid-payload, out-of-range and zero-length writes leave no trace; CACHE answers', async () => {
    const cut = await RawClient.connect(sock);
    await cut.go();
    cut.request(C.NBD_CMD_WRITE, 0, 65536, 1, 0, Buffer.alloc(1000, 0x13));
    await new Promise((r) => setTimeout(r, 50));
    cut.destroy();

    const c = await RawClient.connect(sock);
    await c.go();
    c.request(C.NBD_CMD_WRITE, SIZE - 4096, 8192, 2, 0, Buffer.alloc(8192, 0x14));
    expect((await c.simpleReply()).error).not.toBe(0);
    c.request(C.NBD_CMD_WRITE, 4096, 0, 3);
    const zero = await c.simpleReply();
    expect(zero.handle).toBe(3);
    c.request(C.NBD_CMD_CACHE, 0, 65536, 4);
    expect(await c.simpleReply()).toEqual({ error: 0, handle: 4 });
    c.request(C.NBD_CMD_DISC, 0, 0, 5);
    await c.closed;

    await peer('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 0 256k', uri]);
    await replayEqualsExport();
  });

  it('after a clean stop the journal verifies clean, dump lists every record, and the backing file equals the replay', async () => {
    expect(await srv.stop()).toBe(0);
    const v = await runRewind(['journal', 'verify', spool(), '--json']);
    expect(v.code, v.stderr).toBe(0);
    const report = JSON.parse(v.stdout) as { corruptions: unknown[]; records: number; tornTail?: unknown };
    expect(report.corruptions).toEqual([]);
    expect(report.tornTail).toBeUndefined();

    const dj = await runRewind(['journal', 'dump', spool(), '--json']);
    expect(dj.code, dj.stderr).toBe(0);
    const recs = dj.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: string; kind: string; offset: string; length: number });
    expect(recs.length).toBe(report.records);
    recs.forEach((r, i) => i > 0 && expect(BigInt(r.seq)).toBe(BigInt(recs[i - 1]!.seq) + 1n));
    const kinds = new Set(recs.map((r) => r.kind));
    for (const k of ['write', 'zero', 'trim']) expect(kinds, k).toContain(k);
    // Nothing out of range, cut off or empty was journaled.
    expect(recs.filter((r) => r.kind === 'write' && (r.length === 0 || BigInt(r.offset) + BigInt(r.length) > BigInt(SIZE)))).toEqual([]);
    const dh = await runRewind(['journal', 'dump', spool()]);
    expect(dh.code, dh.stderr).toBe(0);
    const lines = dh.stdout.trim().split('\n');
    expect(lines.length).toBe(recs.length);
    expect(lines[0]).toMatch(new RegExp(`^${recs[0]!.seq}\\t\\S+\\t${recs[0]!.kind}\\s*\\toffset=${recs[0]!.offset}\\tlength=${recs[0]!.length}`));

    const out = path.join(dir, 'final.img');
    const r = await runRewind(['journal', 'replay', spool(), '--out', out, '--size', String(SIZE), '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(path.join(dir, 'disk.img')));
  });
});
