/**
 * `npm run bench` — the data path against reference servers in the same run, same client
 * (fio's nbd engine), same disk. Prints one line per workload with the ratio ours/reference,
 * and the JSON the numbers in docs/BENCHMARKS.md come from.
 *
 *   node dist/bench/run.js [--only NAME-SUBSTRING] [--rounds N]
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NODE_FLAGS } from '../src/core/node-flags.js';
import { freePort, runFio, startProcess, stopProcess, waitForPort, WORKLOADS, type FioResult, type Workload } from './fio-nbd.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const REWIND = path.join(ROOT, 'bin', 'rewind');
const SIZE = '1G';
const execFileP = promisify(execFile);

type Server = 'nbdkit' | 'rewind';

async function measure(server: Server, w: Workload, dir: string): Promise<FioResult> {
  const port = await freePort();
  const image = path.join(dir, `${server}.img`);
  await fs.rm(image, { force: true });
  await fs.writeFile(image, '');
  await fs.truncate(image, 1 << 30);
  const spool = path.join(dir, 'spool');
  await fs.rm(spool, { recursive: true, force: true });
  // Start each run with no dirty pages left by the previous one: on this VM the kernel
  // throttles writers once ~1 GiB is dirty, so whichever side ran second paid for the
  // other's writeback (measured: plain 1 MiB writes 4.3 GiB/s up to ~0.8 GiB dirty, then
  // ~0.7 GiB/s).
  execFileSync('sync');
  const child =
    server === 'nbdkit'
      ? startProcess('nbdkit', ['-f', '-p', String(port), '--ipaddr', '127.0.0.1', 'file', `file=${image}`])
      : startProcess(process.execPath, [...NODE_FLAGS, REWIND, 'serve', '--backing', image, '--size', SIZE, '--spool', spool, '--spool-max', '64G', '--listen', `127.0.0.1:${port}`]);
  try {
    await waitForPort(port);
    await warmFreePages(dir);
    return await runFio(`nbd://127.0.0.1:${port}/`, w);
  } finally {
    await stopProcess(child);
  }
}

/**
 * Right before fio starts, fill and delete a 2 GiB scratch file, so that whichever server
 * runs has the same just-freed, host-backed pages to put its page cache in. This VM hands
 * free guest pages back to the host (virtio-balloon free page reporting), and a page the
 * host took back costs ~10x more to fill the first time: nbdkit's 1 GiB sequential run
 * measured 2028–2188 MiB/s when started 0.2 s after its previous image was deleted and
 * 390–453 MiB/s after 2 s. Without this, the server that starts faster (nbdkit: ~10 ms,
 * node: ~0.5 s) got the warm pages, and the ratio measured the start-up time.
 */
async function warmFreePages(dir: string): Promise<void> {
  // dd in a process of its own rather than writes from this one: with node's own writes
  // (8 MiB fs writes, then rm) rewind's sequential run measured 251–508 MiB/s, after dd
  // 547–734 MiB/s, alternating in one session; nbdkit's was near 2 GiB/s after either.
  const scratch = path.join(dir, 'warm.bin');
  await execFileP('dd', ['if=/dev/zero', `of=${scratch}`, 'bs=8M', 'count=256', 'status=none']);
  await fs.rm(scratch);
}

/**
 * What the spool's disk takes: 1 GiB written O_DIRECT in 8 MiB writes to a new file next
 * to the spool, as the journal writes it. nbdkit leaves every byte in the page cache;
 * rewind must also put every byte on this disk, so for sequential writes this rate, not
 * nbdkit's, is the ceiling of what journaling can do here.
 */
async function journalDiskRate(dir: string): Promise<number> {
  const file = path.join(dir, 'disk-direct.bin');
  await fs.rm(file, { force: true });
  const { stdout } = await execFileP('fio', ['--name=disk', '--ioengine=psync', '--direct=1', '--rw=write', '--bs=8M', '--size=1G', '--fallocate=none', `--filename=${file}`, '--output-format=json'], {
    maxBuffer: 16 << 20,
    timeout: 300_000,
  });
  await fs.rm(file, { force: true });
  return JSON.parse(stdout.slice(stdout.indexOf('{'))).jobs[0].write.bw_bytes;
}

function fmt(w: Workload, r: FioResult): string {
  return w.metric === 'bw' ? `${(r.bwBytes / (1 << 20)).toFixed(0)} MiB/s` : `${r.iops.toFixed(0)} IOPS`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
  const rounds = argv.includes('--rounds') ? Number(argv[argv.indexOf('--rounds') + 1]) : 2;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-bench-'));
  const results: unknown[] = [];
  let failed = 0;
  try {
    for (const w of WORKLOADS.filter((x) => !only || x.name.includes(only))) {
      // Alternate servers each round and keep each one's best, so a noisy moment hurts
      // neither side more than the other.
      const best: Record<Server, FioResult | undefined> = { nbdkit: undefined, rewind: undefined };
      let disk = 0;
      for (let i = 0; i < rounds; i++) {
        if (w.metric === 'bw') disk = Math.max(disk, await journalDiskRate(dir));
        for (const s of (i % 2 === 0 ? ['nbdkit', 'rewind'] : ['rewind', 'nbdkit']) as Server[]) {
          const r = await measure(s, w, dir);
          const key = w.metric === 'bw' ? 'bwBytes' : 'iops';
          if (!best[s] || r[key] > best[s]![key]) best[s] = r;
        }
      }
      const ref = best.nbdkit!;
      const ours = best.rewind!;
      const ratio = w.metric === 'bw' ? ours.bwBytes / ref.bwBytes : ours.iops / ref.iops;
      const pass = ratio >= w.target;
      if (!pass) failed++;
      console.log(
        `${w.name.padEnd(36)} nbdkit ${fmt(w, ref).padStart(12)}   rewind+journal ${fmt(w, ours).padStart(12)}   ratio ${ratio.toFixed(2)} (target ≥ ${w.target}) ${pass ? 'ok' : 'BELOW TARGET'}`,
      );
      if (disk > 0) {
        console.log(`${''.padEnd(36)} journal disk, O_DIRECT ${(disk / (1 << 20)).toFixed(0)} MiB/s: rewind at ${(ours.bwBytes / disk).toFixed(2)} of it, nbdkit at ${(ref.bwBytes / disk).toFixed(2)}`);
      }
      results.push({ workload: w.name, metric: w.metric, nbdkit: ref, rewind: ours, ratio, target: w.target, ...(disk > 0 ? { journalDiskBytesPerSec: disk } : {}) });
    }
    console.log(JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, results }, null, 2));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
