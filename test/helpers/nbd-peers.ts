/**
 * Helpers for tests that drive real NBD peers (qemu-io, qemu-img, nbdcopy, nbdinfo, nbdsh,
 * fio) against a server started in the test process. A missing peer tool is a test
 * failure with a message saying which package to install, never a silent skip.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createNbdServer, type NbdServer } from '../../src/nbd/server.js';
import { ExportRegistry } from '../../src/nbd/export-registry.js';
import { FileBackend } from '../../src/nbd/file-backend.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Throw unless the exit code is 0 (default true). */
  check?: boolean;
}

const PEER_PACKAGES: Record<string, string> = {
  'qemu-io': 'qemu-utils', 'qemu-img': 'qemu-utils', 'qemu-nbd': 'qemu-utils',
  nbdinfo: 'libnbd-bin', nbdcopy: 'libnbd-bin', nbdsh: 'libnbd-bin (and python3-libnbd)', nbdfuse: 'libnbd-bin',
  nbdkit: 'nbdkit', fio: 'fio',
};

/** Throw a clear error when a peer tool is not on PATH. */
export function requirePeer(cmd: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`peer tool "${cmd}" is missing; install the Debian package ${PEER_PACKAGES[cmd] ?? cmd}`);
}

/** Run a command with a timeout (killed by PID when it expires); by default throw on a nonzero exit. */
export function runPeer(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${err.message}; is ${PEER_PACKAGES[cmd] ?? cmd} installed?`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res = { code, signal, stdout, stderr };
      if ((opts.check ?? true) && code !== 0) {
        reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}${signal === 'SIGKILL' ? ` (timeout ${timeoutMs} ms)` : ''}\nstdout: ${stdout}\nstderr: ${stderr}`));
      } else resolve(res);
    });
  });
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** sha256 (hex) of a whole export, read by nbdcopy (a real client) to stdout. */
export function sha256Export(uri: string, timeoutMs = 120_000): Promise<string> {
  requirePeer('nbdcopy');
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const child = spawn('nbdcopy', [uri, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => h.update(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(h.digest('hex'));
      else reject(new Error(`nbdcopy ${uri} - exited ${code}: ${stderr}`));
    });
  });
}

/** A TCP port that was free a moment ago on `host`. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export type NbdAddress = { host: string; port: number } | { path: string };

/** Poll until something accepts connections at `addr` (bounded by timeoutMs). */
export async function waitForListen(addr: NbdAddress, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = 'path' in addr ? net.connect(addr.path) : net.connect(addr.port, addr.host);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening at ${JSON.stringify(addr)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** NBD URI for a TCP or unix-socket address (libnbd and qemu both accept these). */
export function nbdUri(addr: NbdAddress, exportName = ''): string {
  if ('path' in addr) return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${addr.path}`;
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return `nbd://${host}:${addr.port}/${encodeURIComponent(exportName)}`;
}

/** A fresh temp dir; remove it with `fs.rmSync(dir, { recursive: true, force: true })`. */
export function makeTempDir(prefix = 'rewind-nbd-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** qemu-io against `uri` with one or more -c commands; throws on failure (e.g. read -P mismatch). */
export function qemuIo(uri: string, commands: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  requirePeer('qemu-io');
  return runPeer('qemu-io', ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), uri], opts);
}

export interface FileExport {
  server: NbdServer;
  backend: FileBackend;
  address: NbdAddress;
  uri: string;
  file: string;
  close(): Promise<void>;
}

/**
 * Start an NBD server in this process serving `file` (created sparse at `size` if
 * missing) as export `name`, on 127.0.0.1:0 or on a unix socket `socketPath`.
 */
export async function startFileExport(opts: { file: string; size?: number | bigint; name?: string; socketPath?: string; readOnly?: boolean }): Promise<FileExport> {
  const backend = await FileBackend.open(opts.file, { ...(opts.size !== undefined ? { size: opts.size } : {}), ...(opts.readOnly ? { readOnly: true } : {}) });
  const name = opts.name ?? '';
  const server = createNbdServer({ exports: new ExportRegistry().add(name, backend, { description: `test export ${name}` }) });
  const bound = await server.listen(opts.socketPath ? { path: opts.socketPath } : { host: '127.0.0.1', port: 0 });
  const address: NbdAddress = typeof bound === 'string' ? { path: bound } : { host: '127.0.0.1', port: bound.port };
  return {
    server,
    backend,
    address,
    uri: nbdUri(address, name),
    file: opts.file,
    async close() {
      await server.close();
      await backend.close();
    },
  };
}
