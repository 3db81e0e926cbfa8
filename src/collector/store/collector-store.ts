import fsp from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError, fromSystemError } from '../../core/errors.js';
import type { HybridClock } from '../../core/hlc.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type { RetentionPolicy } from './retention.js';
import { VolumeStore } from './volume-store.js';

export interface CollectorStoreOptions {
  segmentBytes?: number;
  /** The planner's interval (default 60 s); see planner/activity.ts. */
  planIntervalNs?: bigint;
  retention?: RetentionPolicy;
  clock?: HybridClock;
  logger?: Logger;
}

/**
 * A deleted volume's directory is first renamed to `.deleting-<name>-<pid>-<ms>` (one
 * atomic step: from then on the volume does not exist), then removed; open() finishes
 * removals a crash cut short. The dot keeps it out of NAME_RE.
 */
const DELETING_PREFIX = '.deleting-';

/** Volume names become directory names: keep them to what Kubernetes allows and more. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/**
 * The collector's storage: `<dataDir>/volumes/<name>/` per volume (volume.json, journal/,
 * checkpoints/, marks.json). A library: no network; the gRPC/HTTP services sit on top.
 */
export class CollectorStore {
  private readonly vols = new Map<string, VolumeStore>();
  private readonly creating = new Map<string, Promise<VolumeStore>>();
  private readonly volumeHooks = new Set<(v: VolumeStore) => void>();

  private constructor(readonly dataDir: string, readonly opts: CollectorStoreOptions, private readonly log: Logger) {}

  static async open(dataDir: string, opts: CollectorStoreOptions = {}): Promise<CollectorStore> {
    const log = opts.logger ?? silentLogger;
    const root = path.join(dataDir, 'volumes');
    try {
      await fsp.mkdir(root, { recursive: true });
    } catch (err) {
      throw fromSystemError(err, `create collector data directory ${root}`);
    }
    const s = new CollectorStore(dataDir, opts, log);
    for (const name of (await fsp.readdir(root)).sort()) {
      // A deletion cut short by a crash: the volume was already gone from the API.
      if (name.startsWith(DELETING_PREFIX)) {
        await fsp.rm(path.join(root, name), { recursive: true, force: true });
        continue;
      }
      if (!NAME_RE.test(name)) continue;
      const dir = path.join(root, name);
      if (!(await fsp.stat(path.join(dir, 'volume.json')).catch(() => null))) continue;
      s.vols.set(name, await VolumeStore.open(dir, s.volumeOptions()));
    }
    log.info('collector store open', { dataDir, volumes: s.vols.size });
    return s;
  }

  private volumeOptions() {
    return { segmentBytes: this.opts.segmentBytes, retention: this.opts.retention, logger: this.log, planIntervalNs: this.opts.planIntervalNs };
  }

  /**
   * Call `fn` for every volume open now and for each one opened or created later (also one
   * reopened after a failed delete). Metrics instrument volumes here, so a volume's first
   * append is counted even when it comes before any scrape.
   */
  onVolume(fn: (v: VolumeStore) => void): () => void {
    this.volumeHooks.add(fn);
    for (const v of this.vols.values()) fn(v);
    return () => this.volumeHooks.delete(fn);
  }

  private opened(v: VolumeStore): VolumeStore {
    for (const fn of this.volumeHooks) fn(v);
    return v;
  }

  volume(name: string): VolumeStore | undefined {
    return this.vols.get(name);
  }

  listVolumes(): VolumeStore[] {
    return [...this.vols.values()];
  }

  /** Create a volume, or return the existing one if it has the same size. */
  async createVolume(name: string, size: bigint, opts: { token?: string } = {}): Promise<VolumeStore> {
    if (!NAME_RE.test(name)) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `volume name "${name}" is not allowed; use letters, digits, '.', '_' and '-' (max 253), starting with a letter or digit`);
    }
    if (size <= 0n) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `volume size must be positive, got ${size}`);
    const pending = this.creating.get(name);
    if (pending) await pending.catch(() => undefined);
    const existing = this.vols.get(name);
    if (existing) {
      if (existing.size !== size) {
        throw new RewindError(ErrorCodes.ALREADY_EXISTS, `volume ${name} exists with size ${existing.size}, not ${size}; resizing a protected volume needs a new volume name or a full resync`);
      }
      return existing;
    }
    const p = VolumeStore.create(path.join(this.dataDir, 'volumes', name), { name, size: size.toString(), generation: 1, token: opts.token, createdNs: (this.opts.clock?.now() ?? BigInt(Date.now()) * 1_000_000n).toString() }, this.volumeOptions());
    this.creating.set(name, p);
    try {
      const v = await p;
      this.vols.set(name, v);
      return this.opened(v);
    } finally {
      this.creating.delete(name);
    }
  }

  /**
   * Remove a volume and all its history (journal, checkpoints, marks). Idempotent: false
   * when there was no such volume. Appends in flight finish first; later ones are refused.
   */
  async deleteVolume(name: string): Promise<boolean> {
    const pending = this.creating.get(name);
    if (pending) await pending.catch(() => undefined);
    const v = this.vols.get(name);
    if (!v) return false;
    this.vols.delete(name);
    await v.close();
    const dir = path.join(this.dataDir, 'volumes', name);
    const doomed = path.join(this.dataDir, 'volumes', `${DELETING_PREFIX}${name}-${process.pid}-${Date.now()}`);
    try {
      await fsp.rename(dir, doomed);
    } catch (err) {
      // Still on disk as it was: put it back so it is served again rather than half gone.
      this.vols.set(name, this.opened(await VolumeStore.open(dir, this.volumeOptions())));
      throw fromSystemError(err, `delete volume ${name}`);
    }
    await fsp.rm(doomed, { recursive: true, force: true }).catch((err: unknown) => this.log.warn('deleted volume directory not fully removed; the next open removes it', { volume: name, err }));
    this.log.info('volume deleted', { volume: name });
    return true;
  }

  async close(): Promise<void> {
    for (const v of this.vols.values()) await v.close();
    this.vols.clear();
  }
}
