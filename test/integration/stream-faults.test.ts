import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCollectorGrpc } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/index.js';
import { readJournal } from '../../src/journal/reader.js';
import { RecordKind, type JournalRecord } from '../../src/journal/record.js';
import { Shipper } from '../../src/ship/shipper.js';
import { Spool } from '../../src/ship/spool.js';
import { startCollectorChild } from '../helpers/collector-process.js';
import { CuttingProxy, expectedWrite, MemorySpool, randomMutation, waitFor } from '../helpers/stream-fixtures.js';

const SIZE = 2 * 1024 * 1024;
const TOKEN = 'faults-token';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-stream-faults-'));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fsp.rm(dir, { recursive: true, force: true });
});

/** The collector's journal for a volume, as records. */
async function collectorJournal(dataDir: string, volume: string): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  for await (const r of readJournal(path.join(dataDir, 'volumes', volume, 'journal'))) out.push({ ...r, payload: Buffer.from(r.payload) });
  return out;
}

function expectSameJournal(got: JournalRecord[], want: JournalRecord[]): void {
  expect(got.map((r) => r.seq)).toEqual(want.map((r) => r.seq)); // no gaps, no duplicates
  const bad = got.filter((r, i) => !r.payload.equals(want[i]!.payload) || r.offset !== want[i]!.offset || r.time !== want[i]!.time).map((r) => r.seq);
  expect(bad).toEqual([]);
}

/** Writes with a FLUSH every `flushEvery`; records which flushes the collector confirmed, and when. */
function workload(spool: MemorySpool, shipper: Shipper, flushEvery = 10) {
  const resolved: bigint[] = [];
  let stop = false;
  let writes = 0;
  const flushes: Promise<void>[] = [];
  const done = (async () => {
    for (let i = 0; i < 100_000 && !stop; i++) {
      const rec = await randomMutation(spool, SIZE);
      writes++;
      if (i % flushEvery === 0) flushes.push(shipper.waitDurable(rec.seq).then(() => void resolved.push(rec.seq), () => undefined));
      await sleep(2);
    }
  })();
  return {
    resolved,
    get writes() { return writes; },
    maxResolved: () => resolved.reduce((a, b) => (b > a ? b : a), 0n),
    async stop() {
      stop = true;
      await done;
    },
  };
}

const startChild = (dataDir: string, port: number) => startCollectorChild(dataDir, port, children);

describe('stream faults', () => {
  it('a proxy that cuts the connection every 1-2 s loses nothing, duplicates nothing, and lag recovers', async () => {
    const data = path.join(dir, 'cut');
    const store = await CollectorStore.open(data);
    const server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
    const proxy = new CuttingProxy(server.port!);
    await proxy.listen();
    const spool = new MemorySpool();
    const shipper = new Shipper({ spool, volume: 'vol-cut', size: BigInt(SIZE), token: TOKEN, target: { address: `127.0.0.1:${proxy.port}`, allowPlaintext: true }, maxBatchRecords: 16, backoff: { initialMs: 20, maxMs: 300 } });
    try {
      shipper.start();
      const w = workload(spool, shipper);
      for (let i = 0; i < 5; i++) {
        await sleep(1000 + Math.random() * 1000);
        proxy.cut();
      }
      await w.stop();
      await shipper.drain(AbortSignal.timeout(30_000));
      const st = shipper.status();
      expect(proxy.cuts).toBeGreaterThanOrEqual(4);
      expect(st.reconnects).toBeGreaterThanOrEqual(4);
      expect(st.lagRecords).toBe(0n);
      expect(st.lagSeconds).toBe(0);
      expect(w.writes).toBeGreaterThan(200);
      expectSameJournal(await collectorJournal(data, 'vol-cut'), spool.records);
    } finally {
      await shipper.stop();
      await proxy.close();
      await server.close();
      await store.close();
    }
  });

  it('a collector closed and reopened mid-stream keeps every flush it confirmed (flush-sync)', async () => {
    const data = path.join(dir, 'reopen');
    let store = await CollectorStore.open(data);
    let server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
    const port = server.port!;
    const spool = new MemorySpool();
    const shipper = new Shipper({ spool, volume: 'vol-re', size: BigInt(SIZE), token: TOKEN, target: { address: `127.0.0.1:${port}`, allowPlaintext: true }, mode: 'flush-sync', backoff: { initialMs: 20, maxMs: 200 } });
    shipper.start();
    const w = workload(spool, shipper);
    try {
      await sleep(1200);
      await server.close();
      await store.close();
      const confirmed = w.maxResolved();
      expect(confirmed).toBeGreaterThan(0n);
      store = await CollectorStore.open(data);
      expect(store.volume('vol-re')!.durableSeq).toBeGreaterThanOrEqual(confirmed);
      await sleep(300); // writes continue while the collector is down
      server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port }, allowPlaintext: true });
      await sleep(800);
      await w.stop();
      await shipper.drain(AbortSignal.timeout(30_000));
      expect(shipper.status().reconnects).toBeGreaterThanOrEqual(1);
      expectSameJournal(await collectorJournal(data, 'vol-re'), spool.records);
    } finally {
      await w.stop();
      await shipper.stop();
      await server.close();
      await store.close();
    }
  });

  it('kill -9 of a collector process loses no flush it confirmed, and the stream resumes without gaps', async () => {
    const data = path.join(dir, 'kill');
    let { child, port } = await startChild(data, 0);
    const spool = new MemorySpool();
    const shipper = new Shipper({ spool, volume: 'vol-kill', size: BigInt(SIZE), token: TOKEN, target: { address: `127.0.0.1:${port}`, allowPlaintext: true }, mode: 'flush-sync', backoff: { initialMs: 20, maxMs: 300 } });
    shipper.start();
    const w = workload(spool, shipper, 5);
    try {
      for (let round = 0; round < 2; round++) {
        await sleep(1500);
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        // Anything confirmed up to here was acked by the collector before it died.
        const confirmed = w.maxResolved();
        await exited;
        expect(confirmed).toBeGreaterThan(0n);
        const check = await CollectorStore.open(data);
        try {
          expect(check.volume('vol-kill')!.durableSeq).toBeGreaterThanOrEqual(confirmed);
        } finally {
          await check.close();
        }
        ({ child, port } = await startChild(data, port));
      }
      await sleep(500);
      await w.stop();
      await shipper.drain(AbortSignal.timeout(30_000));
      expect(shipper.status().reconnects).toBeGreaterThanOrEqual(2);
    } finally {
      await w.stop();
      await shipper.stop();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expectSameJournal(await collectorJournal(data, 'vol-kill'), spool.records);
    await waitFor(() => true, 10, 'noop');
  });

  it('kill -9 of the shipper process: a new shipper on the same spool resumes without gaps or duplicates', async () => {
    const data = path.join(dir, 'shipkill');
    const spoolDir = path.join(dir, 'shipkill-spool');
    const store = await CollectorStore.open(data);
    const server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
    const size = BigInt(SIZE);
    let spool: Spool | undefined;
    let shipper: Shipper | undefined;
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/helpers/shipper-child.ts'), spoolDir, server.address, 'vol-sk', TOKEN, String(SIZE)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      await waitFor(() => store.volume('vol-sk') !== undefined && store.volume('vol-sk')!.durableSeq > 100n, 30_000, `the child to ship 100 entries (${err})`);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      const atKill = store.volume('vol-sk')!.durableSeq;

      spool = await Spool.open(spoolDir, { volumeSize: size, maxBytes: 64 * 1024 * 1024, fullPolicy: 'block' });
      expect(spool.lastSeq).toBeGreaterThanOrEqual(atKill);
      shipper = new Shipper({ spool, volume: 'vol-sk', size, token: TOKEN, target: { address: server.address, allowPlaintext: true }, mode: 'async' });
      shipper.start();
      // The node keeps writing after the restart.
      for (let i = 0; i < 50; i++) {
        const w = expectedWrite(spool.lastSeq + 1n, size);
        await spool.append({ kind: RecordKind.Write, flags: 0, offset: w.offset, length: 4096, payload: w.payload });
      }
      await shipper.drain(AbortSignal.timeout(30_000));
      expect(shipper.status().lastError).toBeUndefined();
      const got = await collectorJournal(data, 'vol-sk');
      expect(got.length).toBe(Number(spool.lastSeq));
      const bad = got.filter((r, i) => {
        const w = expectedWrite(BigInt(i + 1), size);
        return r.seq !== BigInt(i + 1) || r.offset !== w.offset || !r.payload.equals(w.payload);
      });
      expect(bad.map((r) => r.seq)).toEqual([]);
    } finally {
      await shipper?.stop();
      await spool?.close();
      await server.close();
      await store.close();
    }
  });
});
