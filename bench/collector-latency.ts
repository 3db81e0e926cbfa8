/**
 * Item 4: 4 KiB random writes at QD1 with a flush after each, through `rewind up` (NBD
 * server + spool + shipper + collector in one process tree), in `flush-sync` mode (each
 * FLUSH waits for the collector's durable ack) against `async` (FLUSH waits for the local
 * spool only). fio's nbd engine is the client, as in bench/run.ts.
 */
import { execFile, spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NODE_FLAGS } from '../src/core/node-flags.js';
import { stopProcess } from './fio-nbd.js';

const execFileP = promisify(execFile);

/** Per mode: IOPS, write completion latency, and the latency of the flush after each write. */
export interface QdResult {
  iops: number;
  writeP50us: number;
  writeP99us: number;
  flushP50us: number;
  flushP99us: number;
  /** write + flush: what an application doing write-then-fsync waits per operation. */
  opMeanUs: number;
}

/** fio JSON → QdResult; fio reports the fsync latencies under `sync` (lat_ns percentiles). */
async function fioQd1(uri: string, runtimeSecs: number): Promise<QdResult> {
  const args = ['--name=qd1', '--ioengine=nbd', `--uri=${uri}`, '--output-format=json', '--rw=randwrite', '--bs=4k', '--iodepth=1', '--fsync=1', '--size=1G', '--time_based', `--runtime=${runtimeSecs}`];
  const { stdout } = await execFileP('fio', args, { maxBuffer: 64 << 20, timeout: 120_000 });
  const job = JSON.parse(stdout.slice(stdout.indexOf('{'))).jobs[0];
  const w = job.write;
  const wp = w.clat_ns?.percentile ?? {};
  const sp = job.sync?.lat_ns?.percentile ?? {};
  const us = (ns: number | undefined) => (ns ?? NaN) / 1000;
  return {
    iops: w.iops,
    writeP50us: us(wp['50.000000']),
    writeP99us: us(wp['99.000000']),
    flushP50us: us(sp['50.000000']),
    flushP99us: us(sp['99.000000']),
    opMeanUs: us(w.lat_ns?.mean) + us(job.sync?.lat_ns?.mean),
  };
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const REWIND = path.join(ROOT, 'bin', 'rewind');

export type Mode = 'flush-sync' | 'async';

export interface LatencyResult {
  runtimeSecs: number;
  modes: Record<Mode, QdResult>;
  /** flush-sync / async, of the flush latency (the part the durability mode changes). */
  flushP50Ratio: number;
  flushP99Ratio: number;
  writeP50Ratio: number;
  iopsRatio: number;
}

async function upAndFio(work: string, mode: Mode, runtimeSecs: number): Promise<QdResult> {
  const data = path.join(work, `up-${mode}`);
  await fsp.rm(data, { recursive: true, force: true });
  const child = spawn(process.execPath, [...NODE_FLAGS, REWIND, 'up', '--data', data, '--size', '1G', '--nbd', '127.0.0.1:0', '--http', '127.0.0.1:0', '--durability', mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  try {
    // `rewind up` prints one JSON line with its addresses once everything listens.
    const nbd = await new Promise<string>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`rewind up --durability ${mode} printed no endpoints within 30 s: ${err}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(t);
        try {
          resolve((JSON.parse(out.slice(0, nl)) as { nbd: string }).nbd);
        } catch (e) {
          reject(new Error(`rewind up printed something that is not its endpoints line: ${out.slice(0, nl)}`, { cause: e }));
        }
      });
      child.once('exit', (code) => reject(new Error(`rewind up --durability ${mode} exited ${code}: ${err}`)));
    });
    return await fioQd1(nbd, runtimeSecs);
  } finally {
    await stopProcess(child);
    await fsp.rm(data, { recursive: true, force: true });
  }
}

export async function benchLatency(work: string, runtimeSecs: number): Promise<LatencyResult> {
  const fs = await upAndFio(work, 'flush-sync', runtimeSecs);
  const as = await upAndFio(work, 'async', runtimeSecs);
  return {
    runtimeSecs,
    modes: { 'flush-sync': fs, async: as },
    flushP50Ratio: fs.flushP50us / as.flushP50us,
    flushP99Ratio: fs.flushP99us / as.flushP99us,
    writeP50Ratio: fs.writeP50us / as.writeP50us,
    iopsRatio: fs.iops / as.iops,
  };
}
