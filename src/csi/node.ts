import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/logger.js';
import { detachLoop, ensureLoop, ensureNbdfuse, loopFor, stopNbdfuse } from './attach-nbdfuse.js';
import { accessTypeOf, fsTypeOf, requireCapability } from './capability.js';
import type { LocalVolumes } from './controller.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from './csi-error.js';
import { isOurProcess, socketAnswers, startDataPath, stopProcess, type DataPathSpec } from './data-path.js';
import { must, run } from './host-exec.js';
import type { Secrets, VolumeCapability } from './messages.js';
import { isMountPoint, mountsAt, mountsAtSource, probeFsType, unmountAll } from './mounts.js';
import { listStaged, readRecord, volumePaths, writeRecord, type StagedRecord, type VolumePaths } from './node-state.js';
import { TOPOLOGY_KEY } from './proto.js';
import { CTX_NODE, CTX_SIZE, PARAMS, SECRET_TLS_FILES, SECRET_TOKEN } from './volume-params.js';
import { isSafeVolumeId } from './volume-id.js';
import type { VolumeLocks } from './volume-locks.js';

export interface NodeOptions {
  nodeId: string;
  stateDir: string;
  locks: VolumeLocks;
  logger: Logger;
}

type Req = Record<string, any>;

function requireId(req: Req, what: string): string {
  const id: string = req.volume_id ?? '';
  if (!id) throw invalidArgument(`${what}: volume_id is required`);
  // The id names a directory here: refuse anything that could walk out of the state dir.
  if (!isSafeVolumeId(id)) throw notFound(`${what}: "${id}" is not a volume id this driver issues`);
  return id;
}

function requirePath(req: Req, field: string, what: string): string {
  const p: string = req[field] ?? '';
  if (!p) throw invalidArgument(`${what}: ${field} is required`);
  if (!path.isAbsolute(p)) throw invalidArgument(`${what}: ${field} must be an absolute path, not "${p}"`);
  return path.resolve(p);
}

const exists = (p: string) => fsp.lstat(p).then(() => true, () => false);

export function nodeService(o: NodeOptions): { handlers: Record<string, (req: Req) => Promise<object>>; local: LocalVolumes; adopt(): Promise<Array<{ volume: string; healthy: boolean; problem?: string }>> } {
  const paths = (id: string) => volumePaths(o.stateDir, id);

  /** Why a staged volume is not whole (data path gone, device gone...), or undefined when it is. */
  async function health(p: VolumePaths, r: StagedRecord): Promise<string | undefined> {
    if (!(await isOurProcess(r.dataPathPid, p.nbdSocket))) return `its data path (rewind serve, pid ${r.dataPathPid}) is not running; see ${path.join(p.dir, 'serve.log')}`;
    if (!(await socketAnswers(p.nbdSocket))) return `its NBD socket ${p.nbdSocket} does not answer`;
    if (!(await isOurProcess(r.nbdfusePid, p.fuseDir))) return `nbdfuse (pid ${r.nbdfusePid}) is not running; see ${p.nbdfuseLog}`;
    if (!(await loopFor(p.fuseFile))) return 'its loop device is gone';
    if (r.accessType === 'mount' && !(await isMountPoint(r.stagingPath))) return `${r.stagingPath} is not mounted`;
    return undefined;
  }

  async function writeSecrets(p: VolumePaths, secrets: Secrets, ctx: Record<string, string>): Promise<DataPathSpec['collector']> {
    const address = ctx[PARAMS.collector];
    if (address === undefined) return undefined;
    const token = secrets[SECRET_TOKEN];
    if (!token) {
      throw invalidArgument(`NodeStageVolume: the volume ships to collector ${address} but the node-stage secrets hold no "${SECRET_TOKEN}"; set csi.storage.k8s.io/node-stage-secret-name and -namespace on the StorageClass to the volume's token Secret`);
    }
    const plaintext = ctx[PARAMS.collectorPlaintext] === 'true';
    if (!plaintext && !secrets['ca.crt']) {
      throw invalidArgument(`NodeStageVolume: collector ${address} is reached over TLS but the node-stage secrets hold no "ca.crt"; add the collector's CA (and tls.crt/tls.key for mutual TLS), or set parameter ${PARAMS.collectorPlaintext}: "true" for a trusted network`);
    }
    await fsp.mkdir(p.secretDir, { recursive: true, mode: 0o700 });
    await fsp.writeFile(path.join(p.secretDir, 'token'), token + '\n', { mode: 0o600 });
    const tlsDir = path.join(p.secretDir, 'tls');
    if (!plaintext) {
      await fsp.mkdir(tlsDir, { recursive: true, mode: 0o700 });
      for (const f of SECRET_TLS_FILES) if (secrets[f]) await fsp.writeFile(path.join(tlsDir, f), secrets[f]!, { mode: 0o600 });
    }
    return { address, plaintext, tokenFile: path.join(p.secretDir, 'token'), durability: ctx[PARAMS.durability] ?? 'flush-sync', ...(plaintext ? {} : { tlsDir }) };
  }

  /** Undo whatever of a stage exists, innermost first; each step a no-op when already undone. */
  async function teardown(p: VolumePaths, r: StagedRecord | undefined, stagingPath: string | undefined): Promise<void> {
    if (stagingPath) await unmountAll(stagingPath, 'NodeUnstageVolume: unmount the staging path');
    const dev = await loopFor(p.fuseFile);
    // Block mode: the workload wrote to the device's page cache; push it down before the device goes.
    if (dev) await run('blockdev', ['--flushbufs', dev]);
    await detachLoop(p.fuseFile);
    await stopNbdfuse(p.fuseDir, r?.nbdfusePid);
    await stopProcess(r?.dataPathPid, p.nbdSocket, "the volume's data path (rewind serve)");
    await fsp.rm(p.secretDir, { recursive: true, force: true });
    await fsp.rm(p.record, { force: true });
  }

  const handlers = {
    async NodeGetCapabilities() {
      const rpc = (type: string) => ({ rpc: { type } });
      // No EXPAND_VOLUME: the data path's size, the spool's records and the collector's
      // registered size are fixed at start; growing needs all three moved together.
      // VOLUME_CONDITION left the spec in 1.13; health is NodeGetVolumeHealth (GET_VOLUME_HEALTH).
      return { capabilities: ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'GET_VOLUME_HEALTH', 'SINGLE_NODE_MULTI_WRITER'].map(rpc) };
    },

    async NodeGetInfo() {
      return { node_id: o.nodeId, max_volumes_per_node: '0', accessible_topology: { segments: { [TOPOLOGY_KEY]: o.nodeId } } };
    },

    async NodeStageVolume(req: Req) {
      const id = requireId(req, 'NodeStageVolume');
      const staging = requirePath(req, 'staging_target_path', 'NodeStageVolume');
      const cap = requireCapability(req.volume_capability as VolumeCapability, 'NodeStageVolume');
      const ctx = (req.volume_context ?? {}) as Record<string, string>;
      const size = Number(ctx[CTX_SIZE]);
      if (!Number.isSafeInteger(size) || size <= 0) {
        throw invalidArgument(`NodeStageVolume: volume_context lacks ${CTX_SIZE}; pass the context CreateVolume returned (the PV's volumeAttributes)`);
      }
      const home = ctx[CTX_NODE];
      if (home && home !== o.nodeId) {
        throw failedPrecondition(`NodeStageVolume: volume "${id}" lives on node "${home}", not "${o.nodeId}"; its pod must run there (topology ${TOPOLOGY_KEY}), or restore it onto this node with a VolumeRestore`);
      }
      const accessType = accessTypeOf(cap)!;
      const fsType = accessType === 'mount' ? fsTypeOf(cap) : undefined;
      return o.locks.with(id, 'NodeStageVolume', async () => {
        const p = paths(id);
        let r = await readRecord(p);
        if (r && r.stagingPath !== staging) {
          throw failedPrecondition(`NodeStageVolume: volume "${id}" is staged at ${r.stagingPath}; NodeUnstageVolume it there before staging it at ${staging}`);
        }
        if (r && (r.accessType !== accessType || r.fsType !== fsType)) {
          throw alreadyExists(`NodeStageVolume: volume "${id}" is staged as ${r.accessType}${r.fsType ? ` (${r.fsType})` : ''}, not ${accessType}${fsType ? ` (${fsType})` : ''}; unstage it first`);
        }
        if (r?.staged && (await health(p, r)) === undefined) return {};
        await fsp.mkdir(p.dir, { recursive: true });
        await fsp.mkdir(path.dirname(p.nbdSocket), { recursive: true });
        const collector = await writeSecrets(p, (req.secrets ?? {}) as Secrets, ctx);
        r = {
          ...(r ?? { volumeId: id, stagingPath: staging, accessType, sizeBytes: size, staged: false }),
          ...(fsType ? { fsType } : {}),
          ...(cap.mount?.mount_flags?.length ? { mountFlags: cap.mount.mount_flags } : {}),
          ...(collector ? { collector: collector.address } : {}),
        };
        await writeRecord(p, r);
        // 1. The data path: adopted when it still runs, started otherwise.
        if (!(await isOurProcess(r.dataPathPid, p.nbdSocket)) || !(await socketAnswers(p.nbdSocket))) {
          await stopProcess(r.dataPathPid, p.nbdSocket, "the volume's data path (rewind serve)");
          await fsp.rm(p.nbdSocket, { force: true });
          await fsp.rm(p.controlSocket, { force: true });
          r.dataPathPid = await startDataPath({
            dir: p.dir, backing: p.backing, spool: p.spool, nbdSocket: p.nbdSocket, controlSocket: p.controlSocket, sizeBytes: size, volume: id,
            ...(collector ? { collector } : {}),
            ...(ctx[PARAMS.spoolMax] ? { spoolMax: ctx[PARAMS.spoolMax] } : {}),
            ...(ctx[PARAMS.fullPolicy] ? { fullPolicy: ctx[PARAMS.fullPolicy] } : {}),
          });
          await writeRecord(p, r);
        }
        // 2. The block device: nbdfuse's file, then a loop device over it.
        r.nbdfusePid = await ensureNbdfuse(p.fuseDir, p.nbdSocket, size, r.nbdfusePid, p.nbdfuseLog);
        await writeRecord(p, r);
        r.loop = await ensureLoop(p.fuseFile);
        await writeRecord(p, r);
        // 3. Mount access: format when empty, then mount at the staging path.
        if (accessType === 'mount' && !(await isMountPoint(staging))) {
          const found = await probeFsType(r.loop);
          if (found === undefined) {
            // Inode tables and journal written now rather than by ext4lazyinit after mount, so
            // the first minutes of the volume's history hold the workload's writes, not zeroing.
            const args = fsType!.startsWith('ext') ? ['-F', '-q', '-E', 'lazy_itable_init=0,lazy_journal_init=0,nodiscard', r.loop] : ['-q', '-K', r.loop];
            await must(`mkfs.${fsType}`, args, `NodeStageVolume: make a ${fsType} filesystem on volume "${id}"`, 600_000);
            o.logger.info('formatted', { volume: id, fsType, device: r.loop });
          } else if (found !== fsType) {
            throw failedPrecondition(`NodeStageVolume: volume "${id}" holds a ${found} filesystem, but its capability asks for ${fsType}; set the StorageClass's fsType to ${found}`);
          }
          await fsp.mkdir(staging, { recursive: true });
          const flags = r.mountFlags ?? [];
          await must('mount', ['-t', fsType!, ...(flags.length ? ['-o', flags.join(',')] : []), r.loop, staging], `NodeStageVolume: mount volume "${id}" at ${staging}`);
        }
        r.staged = true;
        await writeRecord(p, r);
        o.logger.info('staged', { volume: id, staging, accessType, device: r.loop, dataPathPid: r.dataPathPid, collector: r.collector });
        return {};
      });
    },

    async NodeUnstageVolume(req: Req) {
      const id = requireId(req, 'NodeUnstageVolume');
      const staging = requirePath(req, 'staging_target_path', 'NodeUnstageVolume');
      return o.locks.with(id, 'NodeUnstageVolume', async () => {
        const p = paths(id);
        const r = await readRecord(p);
        if (r && r.stagingPath !== staging) {
          throw failedPrecondition(`NodeUnstageVolume: volume "${id}" is staged at ${r.stagingPath}, not ${staging}`);
        }
        const still: string[] = [];
        for (const t of r?.publishes ?? []) if (await isMountPoint(t)) still.push(t);
        if (r?.loop) for (const m of await mountsAtSource(r.loop)) if (m !== staging && !still.includes(m)) still.push(m);
        if (still.length > 0) {
          throw failedPrecondition(`NodeUnstageVolume: volume "${id}" is still published at ${still.join(', ')}; NodeUnpublishVolume it there first`);
        }
        await teardown(p, r, staging);
        o.logger.info('unstaged', { volume: id, staging });
        return {};
      });
    },

    async NodePublishVolume(req: Req) {
      const id = requireId(req, 'NodePublishVolume');
      const staging = requirePath(req, 'staging_target_path', 'NodePublishVolume');
      const target = requirePath(req, 'target_path', 'NodePublishVolume');
      const cap = requireCapability(req.volume_capability as VolumeCapability, 'NodePublishVolume');
      const readonly = req.readonly === true || cap.access_mode?.mode === 'SINGLE_NODE_READER_ONLY';
      return o.locks.with(id, 'NodePublishVolume', async () => {
        const p = paths(id);
        const r = await readRecord(p);
        if (!r?.staged || r.stagingPath !== staging) {
          throw failedPrecondition(`NodePublishVolume: volume "${id}" is not staged at ${staging}; call NodeStageVolume first`);
        }
        const accessType = accessTypeOf(cap)!;
        if (accessType !== r.accessType) throw invalidArgument(`NodePublishVolume: volume "${id}" is staged for ${r.accessType} access, not ${accessType}`);
        // Published elsewhere and still mounted there: SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod) allows one target only.
        const others: string[] = [];
        for (const t of r.publishes ?? []) if (t !== target && (await isMountPoint(t))) others.push(t);
        if (others.length > 0 && cap.access_mode?.mode === 'SINGLE_NODE_SINGLE_WRITER') {
          throw failedPrecondition(`NodePublishVolume: volume "${id}" is single-writer (ReadWriteOncePod) and already published at ${others.join(', ')}; unpublish it there first`);
        }
        const have = await mountsAt(target);
        if (have.length > 0) {
          const ro = have[have.length - 1]!.options.includes('ro');
          if (ro !== readonly) throw alreadyExists(`NodePublishVolume: ${target} is already published ${ro ? 'read-only' : 'read-write'}; unpublish it before publishing it ${readonly ? 'read-only' : 'read-write'}`);
          return {};
        }
        if (r.accessType === 'block') {
          // The device node bind-mounted onto a file: what kubelet hands a volumeMode Block pod.
          await fsp.mkdir(path.dirname(target), { recursive: true });
          if (!(await exists(target))) await fsp.writeFile(target, '');
          await must('mount', ['--bind', r.loop!, target], `NodePublishVolume: bind ${r.loop} to ${target}`);
        } else {
          await fsp.mkdir(target, { recursive: true });
          await must('mount', ['--bind', staging, target], `NodePublishVolume: bind ${staging} to ${target}`);
        }
        if (readonly) await must('mount', ['-o', 'remount,bind,ro', target], `NodePublishVolume: make ${target} read-only`);
        r.publishes = [...others, target];
        await writeRecord(p, r);
        o.logger.info('published', { volume: id, target, readonly });
        return {};
      });
    },

    async NodeUnpublishVolume(req: Req) {
      const id = requireId(req, 'NodeUnpublishVolume');
      const target = requirePath(req, 'target_path', 'NodeUnpublishVolume');
      return o.locks.with(id, 'NodeUnpublishVolume', async () => {
        await unmountAll(target, 'NodeUnpublishVolume');
        const p = paths(id);
        const r = await readRecord(p);
        if (r?.publishes?.includes(target)) {
          r.publishes = r.publishes.filter((t) => t !== target);
          await writeRecord(p, r);
        }
        const st = await fsp.lstat(target).catch(() => undefined);
        if (st?.isDirectory()) await fsp.rmdir(target).catch(() => {});
        else if (st) await fsp.rm(target, { force: true });
        return {};
      });
    },

    async NodeGetVolumeStats(req: Req) {
      const id = requireId(req, 'NodeGetVolumeStats');
      const vp: string = req.volume_path ?? '';
      if (!vp) throw invalidArgument('NodeGetVolumeStats: volume_path is required');
      const p = paths(id);
      const r = await readRecord(p);
      if (!r) throw notFound(`NodeGetVolumeStats: volume "${id}" is not staged on node "${o.nodeId}"`);
      // A relative path names nothing kubelet published: not found, as the spec has it for a missing path.
      const st = path.isAbsolute(vp) ? await fsp.stat(vp).catch(() => undefined) : undefined;
      if (!st) throw notFound(`NodeGetVolumeStats: ${vp} does not exist`);
      if (r.accessType === 'block' || !st.isDirectory()) {
        return { usage: [{ unit: 'BYTES', total: String(r.sizeBytes) }] };
      }
      const fsStat = await fsp.statfs(vp);
      const total = fsStat.blocks * fsStat.bsize;
      return {
        usage: [
          { unit: 'BYTES', total: String(total), available: String(fsStat.bavail * fsStat.bsize), used: String((fsStat.blocks - fsStat.bfree) * fsStat.bsize) },
          { unit: 'INODES', total: String(fsStat.files), available: String(fsStat.ffree), used: String(fsStat.files - fsStat.ffree) },
        ],
      };
    },

    async NodeGetVolumeHealth(req: Req) {
      const id = requireId(req, 'NodeGetVolumeHealth');
      const p = paths(id);
      const r = await readRecord(p);
      // No adverse condition known = an empty list. A volume not staged here, or whose data
      // path, device or mount is gone, cannot be read or written on this node: INACCESSIBLE.
      const problem = !r ? `volume "${id}" is not staged on node "${o.nodeId}"` : !r.staged ? 'its NodeStageVolume did not finish' : await health(p, r);
      const reason = !r || !r.staged ? 'NotStaged' : problem?.startsWith('its data path') || problem?.startsWith('its NBD') ? 'DataPathDown' : 'DeviceDetached';
      return { volume_health: { volume_id: id, health_statuses: problem ? [{ status: 'INACCESSIBLE', reason, message: problem }] : [] } };
    },
  };

  const local: LocalVolumes = {
    async isStaged(id) {
      return isSafeVolumeId(id) && (await readRecord(paths(id))) !== undefined;
    },
    async free(id) {
      if (!isSafeVolumeId(id)) return;
      const p = paths(id);
      await fsp.rm(p.dir, { recursive: true, force: true });
      await fsp.rm(p.nbdSocket, { force: true });
      await fsp.rm(p.controlSocket, { force: true });
    },
  };

  /** At start: what is staged here, and whether each is whole. Nothing is torn down or restarted. */
  async function adopt() {
    const out: Array<{ volume: string; healthy: boolean; problem?: string }> = [];
    for (const id of await listStaged(o.stateDir)) {
      const p = paths(id);
      const r = await readRecord(p);
      if (!r) continue;
      const problem = r.staged ? await health(p, r) : 'its NodeStageVolume did not finish; the next NodeStageVolume completes it';
      out.push({ volume: id, healthy: problem === undefined, ...(problem ? { problem } : {}) });
      o.logger[problem ? 'warn' : 'info']('adopted staged volume', { volume: id, staging: r.stagingPath, dataPathPid: r.dataPathPid, ...(problem ? { problem } : {}) });
    }
    return out;
  }

  return { handlers, local, adopt };
}
