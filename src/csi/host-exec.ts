import { execFile } from 'node:child_process';
import { internal } from './csi-error.js';

/** The host tools the node service drives (mount, losetup, mkfs, blkid, nbdfuse, fusermount3). */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a tool to completion; never throws for a non-zero exit (callers decide what an exit means). */
export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      if (e && typeof e.code === 'string') {
        // ENOENT: the tool is missing. Say which package brings it.
        resolve({ code: 127, stdout: '', stderr: `${cmd}: ${e.code === 'ENOENT' ? `not installed (${PACKAGE_OF[cmd] ?? 'install it'})` : e.message}` });
        return;
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const PACKAGE_OF: Record<string, string> = {
  nbdfuse: 'Debian package libnbd-bin',
  fusermount3: 'Debian package fuse3',
  losetup: 'Debian package mount',
  mount: 'Debian package mount',
  umount: 'Debian package mount',
  blkid: 'Debian package util-linux',
  'mkfs.ext4': 'Debian package e2fsprogs',
  'mkfs.xfs': 'Debian package xfsprogs',
};

/** Run a tool that must succeed; its failure is INTERNAL with the tool's own words. */
export async function must(cmd: string, args: string[], what: string, timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw internal(`${what}: ${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-800)}`);
  return r.stdout;
}
