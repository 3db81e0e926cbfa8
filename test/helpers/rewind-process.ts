import { spawn, execFile, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { NODE_FLAGS } from '../../src/core/node-flags.js';
import { sha256Export, sha256File } from './nbd-peers.js';

const execFileP = promisify(execFile);
export { sha256File, sha256Export } from './nbd-peers.js';
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const REWIND_BIN = path.join(ROOT, 'bin', 'rewind');

/** A `rewind` server child: its first stdout line is a JSON object of addresses. */
export interface RewindProcess {
  child: ChildProcess;
  info: Record<string, string>;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startRewind(args: string[], timeoutMs = 20_000): Promise<RewindProcess> {
  const child = spawn(process.execPath, [...NODE_FLAGS, REWIND_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-20_000);
  });
  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`rewind ${args[0]} did not report its addresses in ${timeoutMs} ms: ${err}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        try {
          resolve(JSON.parse(out.slice(0, nl)));
        } catch (e) {
          reject(new Error(`rewind ${args[0]} printed a first line that is not JSON: ${out.slice(0, nl)}`));
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`rewind ${args[0]} exited with ${code} before listening: ${err}`));
    });
  });
  return {
    child,
    info,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const done = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await done;
      clearTimeout(t);
      return code;
    },
  };
}

/** Run `rewind ARGS` to completion; resolves with exit code and output. */
export async function runRewind(args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [...NODE_FLAGS, REWIND_BIN, ...args], { timeout: timeoutMs, maxBuffer: 256 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? String(e) };
  }
}

/** Run a peer tool, failing with its output when it exits non-zero (or is missing). */
export async function peer(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') throw new Error(`${cmd} is not installed; run scripts/setup.sh (installs the Debian test peers)`);
    throw new Error(`${cmd} ${args.join(' ')} failed (${err.code}): ${err.stderr ?? ''}${err.stdout ?? ''}`);
  }
}

export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/**
 * The journal is the truth: `rewind journal replay` of `spool` onto a zeroed image equals
 * what the export at `uri` serves now (sha256 of both).
 */
export async function expectReplayEqualsExport(spool: string, size: number, uri: string, out: string): Promise<void> {
  const r = await runRewind(['journal', 'replay', spool, '--out', out, '--size', String(size), '--quiet']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(await sha256File(out)).toBe(await sha256Export(uri));
}
