import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { internal } from './csi-error.js';
import { isOurProcess, stopProcess } from './data-path.js';
import { must, run } from './host-exec.js';
import { isMountPoint } from './mounts.js';

/**
 * A block device over the data path's NBD socket where the kernel has no NBD module (as
 * on this machine, PEERS.md): nbdfuse exposes the export as the file FUSEDIR/nbd (4
 * connections, multi-conn), and a loop device turns that file into a block device. Both
 * are outside the plugin: nbdfuse is started detached in its own session, the loop
 * device is kernel state, so a plugin restart leaves the filesystem on them untouched.
 */
const ATTACH_TIMEOUT_MS = 30_000;

export function nbdUri(socket: string): string {
  return `nbd+unix:///?socket=${socket}`;
}

/** Start nbdfuse on `fuseDir` unless it already exposes the export; returns its pid. */
export async function ensureNbdfuse(fuseDir: string, socket: string, sizeBytes: number, knownPid: number | undefined, logFile: string): Promise<number | undefined> {
  const file = path.join(fuseDir, 'nbd');
  if ((await isMountPoint(fuseDir)) && (await fsp.stat(file).then((s) => s.size === sizeBytes, () => false))) return knownPid;
  // A FUSE mount whose nbdfuse died answers ENOTCONN: clear it before mounting again.
  if (await isMountPoint(fuseDir)) await run('fusermount3', ['-u', '-z', fuseDir]);
  await fsp.mkdir(fuseDir, { recursive: true });
  const errFh = await fsp.open(logFile, 'a');
  let exited: string | undefined;
  let pid: number | undefined;
  try {
    const child = spawn('nbdfuse', [fuseDir, nbdUri(socket)], { detached: true, stdio: ['ignore', 'ignore', errFh.fd] });
    child.once('exit', (code, sig) => (exited = sig ? `killed by ${sig}` : `exit code ${code}`));
    child.once('error', (e) => (exited = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'nbdfuse is not installed (Debian package libnbd-bin)' : e.message));
    child.unref();
    pid = child.pid;
  } finally {
    await errFh.close();
  }
  const deadline = Date.now() + ATTACH_TIMEOUT_MS;
  for (;;) {
    if ((await isMountPoint(fuseDir)) && (await fsp.stat(file).then((s) => s.size === sizeBytes, () => false))) return pid;
    if (exited !== undefined) throw internal(`nbdfuse stopped before exposing ${file} (${exited}); see ${logFile}`);
    if (Date.now() > deadline) throw internal(`nbdfuse did not expose ${file} of ${sizeBytes} bytes in ${ATTACH_TIMEOUT_MS / 1000} s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The loop device already backed by `file`, if any. */
export async function loopFor(file: string): Promise<string | undefined> {
  const r = await run('losetup', ['-n', '-O', 'NAME', '-j', file]);
  return r.code === 0 ? r.stdout.trim().split('\n')[0] || undefined : undefined;
}

/**
 * Direct I/O: the loop device then sends each request straight to nbdfuse instead of
 * through a second page cache over the FUSE file, so a FLUSH from the filesystem finds
 * nothing of its own still cached below it.
 */
export async function ensureLoop(file: string): Promise<string> {
  const have = await loopFor(file);
  if (have) return have;
  return (await must('losetup', ['-f', '--show', '--direct-io=on', file], `attach a loop device to ${file}`)).trim();
}

/** Detach the loop device (bounded retries: the kernel may still hold it for a moment after umount). */
export async function detachLoop(file: string): Promise<void> {
  for (let i = 0; ; i++) {
    const dev = await loopFor(file);
    if (!dev) return;
    const r = await run('losetup', ['-d', dev]);
    if (r.code === 0 && !(await loopFor(file))) return;
    if (i >= 50) throw internal(`losetup -d ${dev} failed: ${r.stderr.trim()}; something still holds the device (lsof ${dev})`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Unmount the FUSE file (nbdfuse flushes and exits) and wait for nbdfuse to be gone. */
export async function stopNbdfuse(fuseDir: string, pid: number | undefined): Promise<void> {
  for (let i = 0; await isMountPoint(fuseDir); i++) {
    const r = await run('fusermount3', ['-u', fuseDir]);
    if (r.code === 0) break;
    if (i >= 50) throw internal(`fusermount3 -u ${fuseDir} failed: ${r.stderr.trim()}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  for (let i = 0; i < 200 && (await isOurProcess(pid, fuseDir)); i++) await new Promise((res) => setTimeout(res, 50));
  await stopProcess(pid, fuseDir, 'nbdfuse');
}
