import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCollectorHttp, type CollectorHttp } from '../collector/http/index.js';
import { CollectorStore } from '../collector/store/index.js';
import { RecordKind, type JournalRecord } from '../journal/record.js';
import { main } from './rewind.js';

const S = 1_000_000_000n;
const T0 = 1_800_000_000n * S;
let dir: string;
let store: CollectorStore;
let http: CollectorHttp;
let seq = 0n;
const write = (off: number, len: number, at: bigint): JournalRecord => ({ kind: RecordKind.Write, flags: 0, seq: ++seq, time: at, offset: BigInt(off), length: len, payload: Buffer.alloc(len, 3) });

async function rewind(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s), stopSignal: new Promise(() => undefined) });
  return { code, out, err };
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-cmd-plan-'));
  store = await CollectorStore.open(dir, { planIntervalNs: 10n * S });
  const a = await store.createVolume('a', 1n << 20n);
  await a.append([write(0, 4096, T0 + S), write(0, 4096, T0 + 2n * S), write(0, 4096, T0 + 3n * S)]);
  await a.append([write(4096, 8192, T0 + 25n * S)]);
  seq = 0n;
  const b = await store.createVolume('b', 1n << 20n);
  await b.append([write(0, 8192, T0 + 11n * S)]);
  http = await startCollectorHttp({ store, listen: { host: '127.0.0.1', port: 0 } });
});
afterAll(async () => {
  await http?.close();
  await store?.close();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

describe('rewind plan', () => {
  const win = ['--from', String(T0), '--to', String(T0 + 29n * S)];

  it('prints the plan as a table', async () => {
    const r = await rewind('plan', 'a', '--collector', http.url, ...win, '--rpo', '10s', '--link', '1kB/s', '--bandwidth', '8kbit', '--outage', '10s');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^volume a +\S+ … \S+ \(3 × 10 s\)$/m);
    expect(r.out).toMatch(/^written +20\.0 KiB$/m);
    expect(r.out).toMatch(/^unique +12\.0 KiB over the window/m);
    expect(r.out).toMatch(/^coalescing saves +8\.0 KiB \(40\.0 %\)$/m);
    expect(r.out).toMatch(/^bandwidth for RPO 10 s +614\.4 B\/s \(4\.92 kbit\/s\) \(written\)/m);
    expect(r.out).toMatch(/^links of 1000 B\/s \(8\.00 kbit\/s\) +1$/m);
    expect(r.out).toMatch(/^RPO at 1000 B\/s \(8\.00 kbit\/s\) +2\.288 s$/m);
    expect(r.out).toMatch(/^resync after 10 s +8\.0 KiB to send/m);
  });

  it('prints the JSON answer with --json, and plans several volumes as a group', async () => {
    const one = await rewind('plan', 'a', '--collector', http.url, ...win, '--rpo', '10s', '--json');
    expect(one.code).toBe(0);
    const p = JSON.parse(one.out);
    expect(p).toMatchObject({ volume: 'a', bytes: { written: 20480, unique: 12288 } });
    expect(p.rpo.curve).toHaveLength(3);
    const group = await rewind('plan', 'a', 'b', '--collector', http.url, ...win, '--rpo', '10s');
    expect(group.code).toBe(0);
    expect(group.out).toMatch(/^group a, b /m);
    expect(group.out).toMatch(/^ {2}b: written 8\.0 KiB, unique 8\.0 KiB/m);
  });

  it('refuses bad input with a stable code before asking the collector, and names an unknown volume', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['plan', 'a', '--collector', http.url, '--rpo', '0s'], 2, /REWIND_ERR_INVALID_ARGUMENT: rpo must be more than 0/],
      [['plan', 'a', '--collector', 'http://127.0.0.1:9', '--rpo', 'soon'], 2, /REWIND_ERR_INVALID_ARGUMENT: rpo: cannot read "soon" as a duration/],
      [['plan', 'a', '--collector', http.url, '--outage', '1x'], 2, /REWIND_ERR_INVALID_ARGUMENT: outage/],
      [['plan', 'a', '--collector', http.url, '--link', 'fast'], 2, /REWIND_ERR_INVALID_ARGUMENT: cannot read link "fast"/],
      [['plan', '--collector', http.url], 2, /name at least one VOLUME/],
      [['plan', 'a', '--collector', '127.0.0.1:80'], 2, /not an HTTP URL/],
      [['plan', 'a', 'b', '--collector', http.url, '--from', 'mark:x'], 2, /instants/],
      [['plan', 'nope', '--collector', http.url], 1, /REWIND_ERR_NOT_FOUND: no volume "nope"/],
      [['plan', 'a', '--collector', http.url, '--from', 'mark:nope'], 1, /REWIND_ERR_NOT_FOUND: from: volume a has no mark "nope"/],
      [['plan', 'a', '--collector', 'http://127.0.0.1:9'], 1, /REWIND_ERR_UNAVAILABLE: cannot reach/],
    ];
    for (const [argv, code, msg] of cases) {
      const r = await rewind(...argv);
      expect({ argv, code: r.code }).toEqual({ argv, code });
      expect(r.err).toMatch(msg);
    }
  });

  it('--help documents the command', async () => {
    const r = await rewind('plan', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Usage: rewind plan VOLUME\.\.\./);
  });
});
