import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../core/node-flags.js';
import { internal } from './csi-error.js';

/**
 * A volume's data path is `rewind serve` (NBD server on a unix socket + spool + shipper)
 * in a process of its own, started detached in its own session: it outlives the node
 * plugin (issue item 5; ceph-csi's rbd-nbd lost I/O on every plugin restart because its
 * NBD daemons lived in the plugin). The plugin finds it again from the pid recorded in
 * the volume's state file, checked against /proc/PID/cmdline so a recycled pid is never
 * taken for it.
 */
export interface DataPathSpec {
  dir: string;
  backing: string;
  spool: string;
  nbdSocket: string;
  controlSocket: string;
  sizeBytes: number;
  volume: string;
  collector?: { address: string; plaintext: boolean; tokenFile: string; tlsDir?: string; durability: string };
  spoolMax?: string;
  fullPolicy?: string;
}

/** Upper bound on a start: the collector is given 60 s, then a restored volume's catch-up copies its image. */
const START_TIMEOUT_MS = 10 * 60_000;
const STOP_TIMEOUT_MS = 60_000;

function rewindBin(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const p = path.join(dir, 'bin', 'rewind');
    if (existsSync(p) && existsSync(path.join(dir, 'package.json'))) return p;
    dir = path.dirname(dir);
  }
  throw internal('bin/rewind not found above the driver\'s module; run the driver from an installed rewind package');
}

export function serveArgs(s: DataPathSpec): string[] {
  const a = [
    'serve', '--backing', s.backing, '--size', String(s.sizeBytes), '--spool', s.spool,
    '--listen', `unix:${s.nbdSocket}`, '--http', `unix:${s.controlSocket}`,
  ];
  if (s.spoolMax) a.push('--spool-max', s.spoolMax);
  if (s.fullPolicy) a.push('--full-policy', s.fullPolicy);
  if (s.collector) {
    a.push('--collector', s.collector.address, '--volume', s.volume, '--token-file', s.collector.tokenFile, '--durability', s.collector.durability);
    if (s.collector.plaintext) a.push('--collector-plaintext');
    else a.push('--tls-dir', s.collector.tlsDir!);
  }
  return a;
}

/** Whether `pid` is a live process whose command line holds `marker` (not a zombie, not a recycled pid). */
export async function isOurProcess(pid: number | undefined, marker: string): Promise<boolean> {
  if (!pid || pid <= 0) return false;
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name: Z is a zombie, X dead.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmd = (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return cmd.some((a) => a.includes(marker));
  } catch {
    return false;
  }
}

export function socketAnswers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(p, () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

async function tail(file: string): Promise<string> {
  const t = await fsp.readFile(file, 'utf8').catch(() => '');
  return t.slice(-1500).trim();
}

/** Start the data path and wait until it reports its addresses (it prints them once serving). */
export async function startDataPath(s: DataPathSpec): Promise<number> {
  const out = path.join(s.dir, 'serve.out');
  const log = path.join(s.dir, 'serve.log');
  await fsp.rm(out, { force: true });
  const outFh = await fsp.open(out, 'w');
  const errFh = await fsp.open(log, 'a');
  let exited: string | undefined;
  let pid: number | undefined;
  try {
    const child = spawn(process.execPath, [...NODE_FLAGS, rewindBin(), ...serveArgs(s)], {
      detached: true,
      stdio: ['ignore', outFh.fd, errFh.fd],
      env: { ...process.env, REWIND_LOG: process.env.REWIND_LOG ?? 'info' },
    });
    child.once('exit', (code, sig) => (exited = sig ? `killed by ${sig}` : `exit code ${code}`));
    child.once('error', (e) => (exited = e.message));
    child.unref();
    pid = child.pid;
  } finally {
    await outFh.close();
    await errFh.close();
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const first = (await fsp.readFile(out, 'utf8').catch(() => '')).split('\n')[0] ?? '';
    if (first.startsWith('{') && (await socketAnswers(s.nbdSocket))) return pid!;
    if (exited !== undefined) {
      throw internal(`the volume's data path (rewind serve) stopped before serving (${exited}); its log ${log} ends: ${await tail(log)}`);
    }
    if (Date.now() > deadline) {
      process.kill(pid!, 'SIGKILL');
      throw internal(`the volume's data path did not start serving in ${START_TIMEOUT_MS / 1000} s; see ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * SIGTERM and wait: `rewind serve` finishes in-flight requests, makes spool and backing
 * durable, and exits. SIGKILL only past the bound; the next start replays the spool.
 */
export async function stopProcess(pid: number | undefined, marker: string, what: string): Promise<void> {
  if (!(await isOurProcess(pid, marker))) return;
  process.kill(pid!, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (await isOurProcess(pid, marker)) {
    if (Date.now() > deadline) {
      process.kill(pid!, 'SIGKILL');
      throw internal(`${what} (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM and was killed; its spool is replayed at the next stage`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
