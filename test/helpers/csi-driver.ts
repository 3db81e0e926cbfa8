import fs from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadCsiProto } from '../../src/csi/proto.js';
import { peer, startRewind, type RewindProcess } from './rewind-process.js';

/** `rewind csi` as a process of its own (from dist/, as kubelet's node plugin runs it). */
export async function startCsiProcess(dir: string, nodeId = 'node-a', mode = 'both'): Promise<{ proc: RewindProcess; endpoint: string; stateDir: string }> {
  const stateDir = path.join(dir, 'state');
  const sock = path.join(dir, 'csi.sock');
  const proc = await startRewind(['csi', '--endpoint', `unix://${sock}`, '--state-dir', stateDir, '--node-id', nodeId, '--mode', mode]);
  return { proc, endpoint: `unix://${sock}`, stateDir };
}

export type CsiClient = Record<string, (req: object) => Promise<any>> & { close(): void };

/**
 * A client of the driver's socket with the `localhost` authority kubelet's and the Go
 * sidecars' clients send (democratic-csi #164: grpc-js once refused it).
 */
export function csiClient(endpoint: string, service: 'Identity' | 'Controller' | 'Node'): CsiClient {
  const Ctor = loadCsiProto()[service];
  const c = new Ctor(endpoint, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'localhost' });
  const out: Record<string, unknown> = { close: () => c.close() };
  for (const name of Object.keys(Ctor.service)) {
    out[name] = (req: object) =>
      new Promise((resolve, reject) => {
        (c as unknown as Record<string, Function>)[name]!.call(c, req, { deadline: Date.now() + 300_000 }, (err: unknown, res: unknown) => (err ? reject(err) : resolve(res)));
      });
  }
  return out as CsiClient;
}

/**
 * Whatever a test's volumes left on the host under `dir`, undone innermost first even
 * after a failure: mounts (publish, staging, FUSE), loop devices over files under it,
 * and the data path and nbdfuse processes named in the staged.json records.
 */
export async function cleanUpCsiHost(dir: string): Promise<void> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const mounts = info.split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m && m.startsWith(dir + '/'));
  for (const m of mounts.sort((a, b) => b.length - a.length)) {
    if (m.endsWith('/fuse')) continue;
    await peer('umount', ['-l', m]).catch(() => {});
  }
  const loops = await peer('losetup', ['-a', '-n', '-O', 'NAME,BACK-FILE']).catch(() => '');
  for (const line of loops.split('\n')) {
    const [dev, file] = line.trim().split(/\s+/);
    if (dev && file?.startsWith(dir + '/')) await peer('losetup', ['-d', dev]).catch(() => {});
  }
  for (const m of mounts.filter((x) => x.endsWith('/fuse'))) await peer('fusermount3', ['-u', '-z', m]).catch(() => {});
  const vols = path.join(dir, 'state', 'node', 'volumes');
  for (const v of await fs.readdir(vols).catch(() => [] as string[])) {
    const rec = JSON.parse(await fs.readFile(path.join(vols, v, 'staged.json'), 'utf8').catch(() => '{}')) as { dataPathPid?: number; nbdfusePid?: number };
    for (const pid of [rec.nbdfusePid, rec.dataPathPid]) {
      if (!pid) continue;
      const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      // Only a process of this test (its command line names the test's directory).
      if (cmd.includes(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  }
}

/** Mounts and loop devices under `dir` still there (a clean unstage leaves none). */
export async function leftovers(dir: string): Promise<string[]> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const mounts = info.split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m && m.startsWith(dir + '/'));
  const loops = (await peer('losetup', ['-a', '-n', '-O', 'NAME,BACK-FILE']).catch(() => ''))
    .split('\n')
    .filter((l) => l.includes(dir + '/'))
    .map((l) => `loop ${l.trim()}`);
  return [...mounts.map((m) => `mount ${m}`), ...loops];
}
