import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectorClient } from '../../src/rpc/transport.js';
import { nowNs, peer, runRewind, sha256Export, sha256File, startRewind, type RewindProcess } from '../helpers/rewind-process.js';

/**
 * Issue 3's first acceptance item, end to end through `rewind up` (NBD server, spool,
 * shipper, collector, HTTP API in one process, flush-sync durability): real clients write
 * — qemu-io, fio, and ext4 over nbdfuse + loop — while the test records the device's
 * sha256 at known instants; then every instant is restored through the collector (CLI and
 * gRPC) and compared.
 */
const SIZE = 96 * 1024 * 1024;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Instant {
  label: string;
  at: bigint;
  sha: string;
  mark?: string;
}

describe('rewind up: restore to any captured instant', () => {
  let dir: string;
  let up: RewindProcess;
  let uri: string;
  let http: string;
  const instants: Instant[] = [];
  let fuse: ChildProcess | undefined;
  let loop: string | undefined;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-up-'));
    up = await startRewind(['up', '--data', path.join(dir, 'data'), '--size', String(SIZE), '--nbd', `unix:${path.join(dir, 'nbd.sock')}`, '--http', '127.0.0.1:0']);
    uri = up.info.nbd!;
    http = up.info.http!;
  });

  afterAll(async () => {
    await peer('umount', [path.join(dir, 'fs')]).catch(() => {});
    if (loop) await peer('losetup', ['-d', loop]).catch(() => {});
    await peer('fusermount3', ['-u', path.join(dir, 'fuse')]).catch(() => {});
    fuse?.kill('SIGKILL');
    await up?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const rewind = (args: string[]) => runRewind([...args, '--data', path.join(dir, 'data')]);

  /** Writers have exited (so every write was acknowledged) before the instant is taken. */
  async function capture(label: string, mark?: string): Promise<void> {
    await pause(15);
    const at = nowNs();
    await pause(15);
    if (mark) {
      const m = await rewind(['mark', mark]);
      expect(m.code, m.stderr).toBe(0);
    }
    instants.push({ label, at, sha: await sha256Export(uri), ...(mark ? { mark } : {}) });
  }

  it('records instants while qemu-io writes, zeroes and discards', async () => {
    await capture('empty');
    for (let i = 0; i < 4; i++) {
      const off = i * 3 * 1024 * 1024 + i * 517;
      await peer('qemu-io', ['-f', 'raw', '-c', `write -P 0x${(0x21 + i).toString(16)} ${off} ${256 * 1024 + i * 1000}`, '-c', `write -z ${off + 4096} 8192`, uri]);
      await capture(`qemu-io round ${i}`, i % 2 ? `qemu-${i}` : undefined);
    }
    await peer('qemu-io', ['-f', 'raw', '-c', 'discard 0 1M', '-c', `write -P 0x99 ${SIZE - 4096} 4096`, uri]);
    await capture('discard + last block', 'after-discard');
  });

  it('records instants while fio writes at QD16 over two connections', async () => {
    await peer('fio', [
      '--name=up', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', '--numjobs=2',
      '--size=4M', '--offset=16M', '--offset_increment=8M', '--verify=crc32c', '--do_verify=1', '--verify_state_save=0',
    ]);
    await capture('fio', 'after-fio');
    await peer('qemu-io', ['-f', 'raw', '-c', 'aio_write -P 0x5e 40M 64k', '-c', 'aio_write -P 0x5f 41M 64k', '-c', 'aio_flush', uri]);
    await capture('qemu-io aio + flush');
  });

  it('records instants while ext4 (nbdfuse + loop) writes files', async () => {
    const mnt = path.join(dir, 'fuse');
    const fsDir = path.join(dir, 'fs');
    await fs.mkdir(mnt);
    await fs.mkdir(fsDir);
    fuse = spawn('nbdfuse', [mnt, uri], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      const st = await fs.stat(path.join(mnt, 'nbd')).catch(() => null);
      if (st?.size === SIZE) break;
      if (i > 150) throw new Error('nbdfuse did not expose the export');
      await pause(100);
    }
    loop = (await peer('losetup', ['-f', '--show', path.join(mnt, 'nbd')])).trim();
    await peer('mkfs.ext4', ['-F', '-q', loop]);
    for (let round = 0; round < 2; round++) {
      await peer('mount', [loop, fsDir]);
      for (let f = 0; f < 8; f++) {
        const body = Buffer.alloc(20_000 + f * 3000).map((_, i) => (i * 31 + f + round * 7) & 0xff);
        await fs.writeFile(path.join(fsDir, `r${round}-f${f}.bin`), body);
      }
      // umount flushes everything through the device; then the instant is a clean fs.
      await peer('umount', [fsDir]);
      await capture(`ext4 round ${round}`, `ext4-${round}`);
    }
    await peer('losetup', ['-d', loop]);
    loop = undefined;
    await peer('fusermount3', ['-u', mnt]);
    fuse = undefined;
  });

  it('restores every instant through the CLI, equal to what the device held then', async () => {
    expect(instants.length).toBeGreaterThanOrEqual(10);
    expect(new Set(instants.map((i) => i.sha)).size).toBeGreaterThanOrEqual(9);
    for (const i of instants) {
      const out = path.join(dir, 'r.img');
      const r = await rewind(['restore', '--at', String(i.at), '--out', out, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      expect(await sha256File(out), `instant "${i.label}"`).toBe(i.sha);
    }
  });

  it('refuses an instant before the volume was protected instead of inventing zeros', async () => {
    const r = await rewind(['restore', '--at', String(instants[0]!.at - 3_600_000_000_000n), '--out', path.join(dir, 'before.img')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/REWIND_ERR_POINT_OUT_OF_WINDOW/);
  });

  it('restores every mark through the CLI', async () => {
    const marked = instants.filter((i) => i.mark);
    expect(marked.length).toBeGreaterThanOrEqual(4);
    for (const i of marked) {
      const out = path.join(dir, 'm.img');
      const r = await rewind(['restore', '--mark', i.mark!, '--out', out, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      expect(await sha256File(out), `mark "${i.mark}"`).toBe(i.sha);
    }
  });

  /** sha256 of the image the gRPC Restore stream sends for `at`, checking order and size. */
  async function grpcRestoreSha(client: ReturnType<typeof collectorClient>, token: string, at: Record<string, string>): Promise<string> {
    const h = createHash('sha256');
    let next = 0;
    const zeros = Buffer.alloc(1 << 20);
    const call = (client.Restore as (req: unknown) => grpc.ClientReadableStream<{ offset: string; data: Buffer; zero_length: string }>)({ volume: 'vol0', token, at });
    for await (const c of call) {
      expect(Number(c.offset)).toBe(next); // in order, no gaps
      let z = Number(c.zero_length);
      next += z || c.data.length;
      if (!z) h.update(c.data);
      while (z > 0) {
        const n = Math.min(z, zeros.length);
        h.update(zeros.subarray(0, n));
        z -= n;
      }
    }
    expect(next).toBe(SIZE);
    return h.digest('hex');
  }

  const withClient = async <T>(fn: (client: ReturnType<typeof collectorClient>, token: string) => Promise<T>): Promise<T> => {
    const token = (await fs.readFile(path.join(dir, 'data', 'collector', 'vol0.token'), 'utf8')).trim();
    const client = collectorClient({ address: up.info.grpc!, allowPlaintext: true });
    try {
      return await fn(client, token);
    } finally {
      client.close();
    }
  };

  it('restores every instant and every mark through the gRPC Restore stream', async () => {
    await withClient(async (client, token) => {
      for (const i of instants) expect(await grpcRestoreSha(client, token, { time_ns: i.at.toString() }), `gRPC instant "${i.label}"`).toBe(i.sha);
      for (const i of instants.filter((x) => x.mark)) expect(await grpcRestoreSha(client, token, { mark: i.mark! }), `gRPC mark "${i.mark}"`).toBe(i.sha);
    });
  });

  it('reads instants written as RFC 3339 and as "… ago", and the mark list in status', async () => {
    // Instants are whole ms (Date.now()), so their ISO strings name them exactly.
    for (const i of [instants[3]!, instants[instants.length - 1]!]) {
      const rfc = new Date(Number(i.at / 1_000_000n)).toISOString();
      const out = path.join(dir, 'rfc.img');
      const r = await rewind(['restore', '--at', rfc, '--out', out, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      expect(await sha256File(out), `instant "${i.label}" as ${rfc}`).toBe(i.sha);
    }
    // Nothing has written since the last capture: "1s ago" is the device as it is.
    await pause(1200);
    const out = path.join(dir, 'ago.img');
    const r = await rewind(['restore', '--at', '1s ago', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`restore: 100% \\(${SIZE} of ${SIZE} bytes\\)\\n$`)); // progress ends at done
    expect(await sha256File(out)).toBe(instants[instants.length - 1]!.sha);
    const bad = await rewind(['restore', '--at', '2026-02-30T10:00:00Z', '--out', out]);
    expect(bad.code).toBe(2); // bad input, as for every usage error
    expect(bad.stderr).toMatch(/REWIND_ERR_INVALID_ARGUMENT.*RFC 3339/);

    const st = await rewind(['status', '--json']);
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout) as { marks: Array<{ name: string }>; durableSeq: string };
    expect(status.marks.map((m) => m.name).sort()).toEqual(instants.filter((i) => i.mark).map((i) => i.mark!).sort());
    expect(BigInt(status.durableSeq)).toBeGreaterThan(0n);
  });

  it('export serves a mark over NBD; with --overlay it takes writes and history stays as it was', async () => {
    const m = instants.find((i) => i.mark === 'after-fio')!;
    const ro = await startRewind(['export', '--mark', m.mark!, '--listen', `unix:${path.join(dir, 'ro.sock')}`, '--quiet', '--data', path.join(dir, 'data')]);
    try {
      expect(await sha256Export(ro.info.nbd!)).toBe(m.sha);
      await expect(peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 4k', ro.info.nbd!])).rejects.toThrow(/Permission denied/); // qemu refuses to open a read-only export for writing
    } finally {
      expect(await ro.stop()).toBe(0);
    }
    const rw = await startRewind(['export', '--mark', m.mark!, '--overlay', '--listen', `unix:${path.join(dir, 'rw.sock')}`, '--quiet', '--data', path.join(dir, 'data')]);
    try {
      await peer('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 4k', '-c', 'read -P 0x11 0 4k', rw.info.nbd!]);
      expect(await sha256Export(rw.info.nbd!)).not.toBe(m.sha);
    } finally {
      expect(await rw.stop()).toBe(0);
    }
    const out = path.join(dir, 'x.img');
    expect((await rewind(['restore', '--mark', m.mark!, '--out', out, '--quiet'])).code).toBe(0);
    expect(await sha256File(out)).toBe(m.sha);
  });

  it('diff between two instants covers every byte that differs between their restored images', async () => {
    const a = instants[2]!;
    const b = instants[instants.length - 3]!;
    const [ia, ib] = [path.join(dir, 'a.img'), path.join(dir, 'b.img')];
    expect((await rewind(['restore', '--at', String(a.at), '--out', ia, '--quiet'])).code).toBe(0);
    expect((await rewind(['restore', '--at', String(b.at), '--out', ib, '--quiet'])).code).toBe(0);
    const d = await rewind(['diff', '--from', String(a.at), '--to', String(b.at), '--json']);
    expect(d.code, d.stderr).toBe(0);
    const reported = (JSON.parse(d.stdout) as { extents: Array<{ offset: string; length: string; kind: string }> }).extents;
    const extents = reported.map((e) => [Number(e.offset), Number(e.length)] as const);
    const [ba, bb] = [await fs.readFile(ia), await fs.readFile(ib)];
    let covered = 0;
    let differing = 0;
    let k = 0;
    for (let off = 0; off < SIZE; off++) {
      if (ba[off] === bb[off]) continue;
      differing++;
      while (k < extents.length && extents[k]![0] + extents[k]![1] <= off) k++;
      if (k < extents.length && extents[k]![0] <= off) covered++;
    }
    expect(differing).toBeGreaterThan(0);
    expect(covered).toBe(differing); // no missing extent
    for (let j = 1; j < extents.length; j++) expect(extents[j]![0]).toBeGreaterThanOrEqual(extents[j - 1]![0] + extents[j - 1]![1]);
    // Nothing reported that did not change: every 512-byte piece of an extent holds a differing byte.
    const unchanged: number[] = [];
    for (const [off, len] of extents) {
      for (let g = off; g < off + len; g += 512) {
        const e = Math.min(g + 512, off + len);
        if (ba.subarray(g, e).equals(bb.subarray(g, e))) unchanged.push(g);
      }
    }
    expect(unchanged).toEqual([]);
    // The discard of 0..1M between the two is reported as zeroed, and zeroed extents are zero.
    const zeroed = reported.filter((e) => e.kind === 'zero');
    expect(zeroed.some((e) => Number(e.offset) === 0)).toBe(true);
    for (const e of zeroed) expect(bb.subarray(Number(e.offset), Number(e.offset) + Number(e.length)).every((x) => x === 0)).toBe(true);
  });

  it('after consolidation, instants and marks still in the window stay exact and older ones give a clear error', async () => {
    const cut = instants[5]!;
    const res = await fetch(`${http}/v1/volumes/vol0/consolidate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ upTo: String(cut.at) }) });
    expect(res.status, await res.clone().text()).toBe(200);
    for (const i of instants) {
      const out = path.join(dir, 'c.img');
      const r = await rewind(['restore', '--at', String(i.at), '--out', out, '--quiet']);
      if (i.at >= cut.at) {
        expect(r.code, r.stderr).toBe(0);
        expect(await sha256File(out), `instant "${i.label}" after consolidation`).toBe(i.sha);
      } else {
        expect(r.code, `instant "${i.label}" is before the cut`).toBe(1);
        expect(r.stderr).toMatch(/REWIND_ERR_POINT_OUT_OF_WINDOW.*restorable window/);
      }
      if (!i.mark) continue;
      const rm = await rewind(['restore', '--mark', i.mark, '--out', out, '--quiet']);
      if (i.at >= cut.at) {
        expect(rm.code, rm.stderr).toBe(0);
        expect(await sha256File(out), `mark "${i.mark}" after consolidation`).toBe(i.sha);
      } else {
        expect(rm.code, `mark "${i.mark}" is before the cut`).toBe(1);
        expect(rm.stderr).toMatch(/REWIND_ERR_POINT_OUT_OF_WINDOW/);
      }
    }
    // The same through gRPC: one instant on each side.
    await withClient(async (client, token) => {
      expect(await grpcRestoreSha(client, token, { time_ns: instants.at(-2)!.at.toString() })).toBe(instants.at(-2)!.sha);
      await expect(grpcRestoreSha(client, token, { time_ns: instants[1]!.at.toString() })).rejects.toThrow(/restorable window/);
    });
  });
});
