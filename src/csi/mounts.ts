import fsp from 'node:fs/promises';
import path from 'node:path';
import { must, run } from './host-exec.js';

/** One line of /proc/self/mountinfo, the fields the node service decides on. */
export interface MountEntry {
  mountPoint: string;
  root: string;
  source: string;
  fsType: string;
  options: string[];
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 ...). */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export async function mountsAt(mountPoint: string): Promise<MountEntry[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const want = path.resolve(mountPoint);
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre!.split(' ');
    const g = (post ?? '').split(' ');
    const mp = unescape(f[4] ?? '');
    if (mp !== want) continue;
    out.push({ mountPoint: mp, root: unescape(f[3] ?? ''), source: unescape(g[1] ?? ''), fsType: g[0] ?? '', options: (f[5] ?? '').split(',') });
  }
  return out;
}

/** Mount points whose source is `dev` (the staging mount and its bind mounts show the device). */
export async function mountsAtSource(dev: string): Promise<string[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    if (unescape(post.split(' ')[1] ?? '') === dev) out.push(unescape(pre!.split(' ')[4] ?? ''));
  }
  return out;
}

export async function isMountPoint(p: string): Promise<boolean> {
  return (await mountsAt(p)).length > 0;
}

/** Unmount every layer stacked on `p` (a retried publish may have left two). Bounded. */
export async function unmountAll(p: string, what: string): Promise<void> {
  for (let i = 0; i < 8 && (await isMountPoint(p)); i++) await must('umount', [p], what);
}

/** The filesystem type blkid finds on a device, or undefined when it holds none (exit 2). */
export async function probeFsType(dev: string): Promise<string | undefined> {
  const r = await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', dev]);
  if (r.code === 2) return undefined;
  if (r.code !== 0) {
    // blkid -p exits 2 for nothing found; anything else is a read error worth reporting.
    await must('blkid', ['-p', '-o', 'value', '-s', 'TYPE', dev], `probe ${dev}`);
  }
  return r.stdout.trim() || undefined;
}
