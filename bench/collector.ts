/**
 * Collector benchmarks (issue 3): one line per item with its ratio against a reference
 * measured in this same run on the same disk, then the JSON docs/BENCHMARKS.md quotes.
 *
 *   npm run build && node dist/bench/collector.js [--quick] [--only ingest|restore|latency]
 *
 * Full: ingest 512 MiB ×2 rounds; restore of a 1 GiB volume with 4 GiB of history; diff of
 * two marks 1% apart; QD1 write+flush for 8 s per mode. --quick: 128 MiB ×1, 256 MiB
 * volume with 1 GiB of history, 3 s per mode (a smoke run, not numbers to quote).
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { NODE_FLAGS } from '../src/core/node-flags.js';
import { benchIngest } from './collector-ingest.js';
import { benchLatency } from './collector-latency.js';
import { benchRestore } from './collector-restore.js';
import { MIX_DESCRIPTION, MiB } from './collector-workload.js';

const TARGET_INGEST = 0.6;
const TARGET_RESTORE = 2;
const TARGET_DIFF_MS = 100;

function verdict(ok: boolean): string {
  return ok ? 'ok' : 'MISSES TARGET';
}

function diskOf(dir: string): string {
  try {
    const lines = execFileSync('df', ['-h', '--output=source,fstype,size', dir]).toString().trim().split('\n');
    return lines[lines.length - 1]!.trim().replace(/\s+/g, ' ');
  } catch {
    return 'unknown';
  }
}

/**
 * This process hosts the benchmark's shipper and stores: run it with the flags every Rewind
 * process runs with (src/core/node-flags.ts), starting a copy of itself if it was not.
 */
function reexecWithNodeFlags(): boolean {
  if (NODE_FLAGS.every((f) => process.execArgv.includes(f))) return false;
  const r = spawnSync(process.execPath, [...NODE_FLAGS, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
  return true;
}

async function main(): Promise<void> {
  if (reexecWithNodeFlags()) return;
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
  const want = (item: string) => !only || item.includes(only);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-bench-collector-'));
  const out: Record<string, unknown> = { date: new Date().toISOString(), quick, cpus: os.cpus().length, disk: diskOf(work), node: process.version };
  let missed = 0;
  const t0 = performance.now();
  try {
    if (want('ingest')) {
      const r = await benchIngest(work, (quick ? 128 : 512) * MiB, quick ? 1 : 2);
      out.ingest = r;
      const ceiling = r.grpcMemoryMiBs === undefined ? 'not measured (no /dev/shm)' : `${r.grpcMemoryMiBs.toFixed(0)} MiB/s`;
      for (const [name, mibs, ratio] of [['VolumeStore.append', r.storeMiBs, r.storeRatio], ['Shipper→gRPC TCP', r.grpcMiBs, r.grpcRatio]] as const) {
        const ok = ratio >= TARGET_INGEST;
        if (!ok) missed++;
        console.log(
          `ingest ${name.padEnd(20)} ${mibs.toFixed(0).padStart(5)} MiB/s   fsync'd seq writes ${r.refMiBs.toFixed(0).padStart(5)} MiB/s   ratio ${ratio.toFixed(2)} (target ≥ ${TARGET_INGEST}) ${verdict(ok)}`,
        );
      }
      console.log(`  same over the unix socket of \`rewind up\` (report): ${r.grpcUnixMiBs.toFixed(0)} MiB/s, ratio ${r.grpcUnixRatio.toFixed(2)}`);
      console.log(`  gRPC path with the collector's data in /dev/shm (transport ceiling, no disk): ${ceiling}`);
    }
    if (want('restore') || want('diff')) {
      const vol = (quick ? 256 : 1024) * MiB;
      const r = await benchRestore(work, vol, 4 * vol);
      out.restore = { ...r, mixDescription: MIX_DESCRIPTION };
      const okR = r.ratio <= TARGET_RESTORE;
      if (!okR) missed++;
      console.log(
        `restore ${vol / MiB} MiB, ${(r.historyBytes / MiB).toFixed(0)} MiB history (${r.records} writes) ${r.restoreSecs.toFixed(2)} s   seq copy ${r.copySecs.toFixed(2)} s   ratio ${r.ratio.toFixed(2)}× (target ≤ ${TARGET_RESTORE}×, ${r.cold ? 'cold cache' : 'WARM cache: drop_caches refused'}) ${verdict(okR)}`,
      );
      console.log(`  mix: ${MIX_DESCRIPTION}; counts ${r.mix}; build ${r.buildSecs.toFixed(1)} s, reopen ${r.reopenSecs.toFixed(2)} s`);
      const d = r.diff;
      const okD = d.exactMs < TARGET_DIFF_MS;
      if (!okD) missed++;
      console.log(
        `diff marks ${(d.changedBytes / MiB).toFixed(1)} MiB (1%) apart on ${vol / MiB} MiB   exact ${d.exactMs.toFixed(1)} ms (first ${d.exactFirstMs.toFixed(1)} ms, ${d.exactExtents} extents)   exact:false ${d.looseMs.toFixed(1)} ms (${d.looseExtents} extents)   (target < ${TARGET_DIFF_MS} ms; the APIs use exact) ${verdict(okD)}`,
      );
    }
    if (want('latency')) {
      const r = await benchLatency(work, quick ? 3 : 8);
      out.latency = r;
      const f = r.modes['flush-sync'];
      const a = r.modes.async;
      const us = (x: number) => `${x.toFixed(0)} µs`;
      console.log(
        `QD1 4K write+flush  flush-sync ${f.iops.toFixed(0)} IOPS, flush p50 ${us(f.flushP50us)} p99 ${us(f.flushP99us)}, write p50 ${us(f.writeP50us)}   async ${a.iops.toFixed(0)} IOPS, flush p50 ${us(a.flushP50us)} p99 ${us(a.flushP99us)}, write p50 ${us(a.writeP50us)}   flush ratio p50 ${r.flushP50Ratio.toFixed(2)}× p99 ${r.flushP99Ratio.toFixed(2)}×, IOPS ratio ${r.iopsRatio.toFixed(2)} (report)`,
      );
    }
    out.totalSecs = (performance.now() - t0) / 1000;
    console.log(JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
  process.exitCode = missed > 0 ? 1 : 0;
}

await main();
