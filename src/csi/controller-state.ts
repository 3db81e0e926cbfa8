import fsp from 'node:fs/promises';
import path from 'node:path';
import { replaceFileAtomic } from '../core/atomic-file.js';
import { ErrorCodes, RewindError } from '../core/errors.js';

/** One provisioned volume, as the controller service recorded it at CreateVolume. */
export interface VolumeRecord {
  id: string;
  /** The CO's name for it (CreateVolume.name, the PV name under Kubernetes): idempotency key. */
  name: string;
  sizeBytes: number;
  /** The node whose state dir holds (or will hold, at first NodeStage) the sparse backing file. */
  node: string;
  context: Record<string, string>;
  createdAt: string;
}

/**
 * The controller's record of volumes: one JSON file replaced atomically on every change,
 * so a crash leaves the old or the new set. Changes are serialized by a promise chain;
 * the per-volume locks keep two calls on one name apart before they get here.
 */
export class ControllerState {
  private volumes = new Map<string, VolumeRecord>();
  private chain: Promise<void> = Promise.resolve();
  private constructor(private readonly file: string) {}

  static async open(stateDir: string): Promise<ControllerState> {
    const dir = path.join(stateDir, 'controller');
    await fsp.mkdir(dir, { recursive: true });
    const s = new ControllerState(path.join(dir, 'volumes.json'));
    const text = await fsp.readFile(s.file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (text !== undefined) {
      try {
        const body = JSON.parse(text) as { volumes: VolumeRecord[] };
        for (const v of body.volumes) s.volumes.set(v.id, v);
      } catch (cause) {
        throw new RewindError(ErrorCodes.INTERNAL, `${s.file} is not valid JSON; restore it from a backup or move it aside (volumes it listed are then unknown to the controller)`, { cause });
      }
    }
    return s;
  }

  get(id: string): VolumeRecord | undefined {
    return this.volumes.get(id);
  }

  /** Sorted by id, so ListVolumes pages are stable across calls. */
  list(): VolumeRecord[] {
    return [...this.volumes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  put(v: VolumeRecord): Promise<void> {
    this.volumes.set(v.id, v);
    return this.persist();
  }

  remove(id: string): Promise<void> {
    this.volumes.delete(id);
    return this.persist();
  }

  private persist(): Promise<void> {
    const body = JSON.stringify({ volumes: this.list() }, null, 1) + '\n';
    this.chain = this.chain.catch(() => {}).then(() => replaceFileAtomic(this.file, body));
    return this.chain;
  }
}
