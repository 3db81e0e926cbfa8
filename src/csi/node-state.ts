import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { replaceFileAtomic } from '../core/atomic-file.js';
import type { AccessType } from './capability.js';

/**
 * What the node service knows about a staged volume, kept in the volume's directory so
 * a restarted plugin re-adopts it: the processes and devices it set up, each written as
 * soon as it exists, so an unstage after a stage cut short finds and undoes them.
 */
export interface StagedRecord {
  volumeId: string;
  stagingPath: string;
  accessType: AccessType;
  fsType?: string;
  mountFlags?: string[];
  sizeBytes: number;
  collector?: string;
  dataPathPid?: number;
  nbdfusePid?: number;
  loop?: string;
  /** Target paths published from this staging, so unstage can refuse while one is left. */
  publishes?: string[];
  /** Set once every step of NodeStage is done. */
  staged: boolean;
}

/** Where one volume's files live on this node. */
export interface VolumePaths {
  dir: string;
  backing: string;
  spool: string;
  fuseDir: string;
  fuseFile: string;
  secretDir: string;
  record: string;
  nbdSocket: string;
  controlSocket: string;
  nbdfuseLog: string;
}

/** sun_path holds 108 bytes; sockets go under a short run/ dir named by a digest of the id. */
const SUN_PATH_MAX = 107;

export function volumePaths(stateDir: string, id: string): VolumePaths {
  const dir = path.join(stateDir, 'node', 'volumes', id);
  const h = createHash('sha256').update(id).digest('hex').slice(0, 16);
  const run = path.join(stateDir, 'run');
  return {
    dir,
    backing: path.join(dir, 'backing.img'),
    spool: path.join(dir, 'spool'),
    fuseDir: path.join(dir, 'fuse'),
    fuseFile: path.join(dir, 'fuse', 'nbd'),
    secretDir: path.join(dir, 'secret'),
    record: path.join(dir, 'staged.json'),
    nbdSocket: path.join(run, `${h}.nbd`),
    controlSocket: path.join(run, `${h}.ctl`),
    nbdfuseLog: path.join(dir, 'nbdfuse.log'),
  };
}

export function socketPathTooLong(stateDir: string): boolean {
  return path.join(stateDir, 'run', `${'0'.repeat(16)}.nbd`).length > SUN_PATH_MAX;
}

export async function readRecord(p: VolumePaths): Promise<StagedRecord | undefined> {
  const text = await fsp.readFile(p.record, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as StagedRecord);
}

export async function writeRecord(p: VolumePaths, r: StagedRecord): Promise<void> {
  await replaceFileAtomic(p.record, JSON.stringify(r, null, 1) + '\n', 0o600);
}

export async function listStaged(stateDir: string): Promise<string[]> {
  const root = path.join(stateDir, 'node', 'volumes');
  const names = await fsp.readdir(root).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names.sort()) if (await fsp.stat(path.join(root, n, 'staged.json')).then(() => true, () => false)) out.push(n);
  return out;
}
