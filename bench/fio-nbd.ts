import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import net from 'node:net';

const execFileP = promisify(execFile);

/** One fio workload against an NBD URI, as the acceptance bar states them. */
export interface Workload {
  name: string;
  /** Which number the ratio compares: bandwidth for sequential, IOPS for random. */
  metric: 'bw' | 'iops';
  args: string[];
  /** Minimum ratio ours/reference that issue 2 asks for. */
  target: number;
}

export const WORKLOADS: Workload[] = [
  { name: 'seq write 1 MiB QD16', metric: 'bw', target: 0.5, args: ['--rw=write', '--bs=1M', '--iodepth=16', '--size=1G'] },
  {
    name: 'rand write 4 KiB QD16',
    metric: 'iops',
    target: 0.7,
    args: ['--rw=randwrite', '--bs=4k', '--iodepth=16', '--size=1G', '--time_based', '--runtime=8'],
  },
  {
    name: 'rand write 4 KiB QD1 + flush each',
    metric: 'iops',
    target: 0.6,
    args: ['--rw=randwrite', '--bs=4k', '--iodepth=1', '--fsync=1', '--size=1G', '--time_based', '--runtime=8'],
  },
];

export interface FioResult {
  bwBytes: number;
  iops: number;
  latP50us: number;
  latP99us: number;
}

export async function runFio(uri: string, w: Workload): Promise<FioResult> {
  const { stdout } = await execFileP(
    'fio',
    ['--name=bench', '--ioengine=nbd', `--uri=${uri}`, '--output-format=json', '--group_reporting', ...w.args],
    { maxBuffer: 64 << 20, timeout: 300_000 },
  );
  const job = JSON.parse(stdout.slice(stdout.indexOf('{'))).jobs[0].write;
  const pct = job.clat_ns?.percentile ?? {};
  return {
    bwBytes: job.bw_bytes,
    iops: job.iops,
    latP50us: (pct['50.000000'] ?? 0) / 1000,
    latP99us: (pct['99.000000'] ?? 0) / 1000,
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function startProcess(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  child.on('exit', (code, sig) => {
    if (code && code !== 0) process.stderr.write(`${cmd} exited ${code ?? sig}: ${err}\n`);
  });
  return child;
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}
