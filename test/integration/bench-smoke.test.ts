import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/rewind-process.js';

const execFileP = promisify(execFile);

/**
 * The benches run and print every item the issues ask for, as ratios against a reference of
 * the same run. Speeds are not judged here (docs/BENCHMARKS.md records them): a bench exits 1
 * when a target is missed, which on this shared machine says nothing about the code.
 */
async function bench(script: string, args: string[]): Promise<string> {
  try {
    return (await execFileP(process.execPath, [path.join(ROOT, 'dist/bench', script), ...args], { cwd: ROOT, maxBuffer: 16 << 20, timeout: 240_000 })).stdout;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    // 1 = a target missed, which is also node's code for a crash: a crash leaves a stack
    // trace and no closing JSON.
    expect(e.code, `${script} failed: ${e.stderr}`).toBe(1);
    expect(e.stderr ?? '').not.toMatch(/^\s+at /m);
    expect((e.stdout ?? '').trimEnd().endsWith('}')).toBe(true);
    return e.stdout ?? '';
  }
}

describe('bench smoke', () => {
  it('collector bench --quick prints ingest, restore, diff and latency with their ratios', async () => {
    const out = await bench('collector.js', ['--quick']);
    expect(out).toMatch(/^ingest Shipper→gRPC TCP .* ratio \d+\.\d\d \(target ≥ 0\.6\)/m);
    expect(out).toMatch(/^restore \d+ MiB, \d+ MiB history .* ratio \d+\.\d\d× \(target ≤ 2×/m);
    expect(out).toMatch(/^diff marks .* exact \d+\.\d ms .*\(target < 100 ms/m);
    expect(out).toMatch(/^QD1 4K write\+flush .* flush ratio p50 \d+\.\d\d×/m);
    const json = JSON.parse(out.slice(out.indexOf('\n{') + 1)) as Record<string, unknown>;
    expect(json.quick).toBe(true);
  }, 300_000);

  it('NBD bench runs nbdkit and rewind in one run and prints the ratio', async () => {
    const out = await bench('run.js', ['--rounds', '1', '--only', 'flush']);
    expect(out).toMatch(/^rand write 4 KiB QD1 \+ flush each +nbdkit +\d+ IOPS +rewind\+journal +\d+ IOPS +ratio \d+\.\d\d \(target ≥ 0\.6\)/m);
    const json = JSON.parse(out.slice(out.indexOf('\n{') + 1)) as { results: Array<{ nbdkit: { iops: number }; rewind: { iops: number } }> };
    expect(json.results).toHaveLength(1);
    expect(json.results[0]!.nbdkit.iops).toBeGreaterThan(0);
    expect(json.results[0]!.rewind.iops).toBeGreaterThan(0);
  }, 300_000);
});
