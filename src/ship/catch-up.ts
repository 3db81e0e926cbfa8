import fs from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Backend } from '../nbd/backend.js';
import { CollectorApi, type VolumeStatusView } from '../rpc/collector-api.js';
import type { CollectorTarget } from '../rpc/transport.js';
import { sleep } from './backoff.js';
import type { Spool } from './spool.js';

/**
 * Before a node serves a volume it asks the collector what the volume's history holds,
 * because the node may be the one that is behind:
 * - a new PVC filled by a VolumeRestore: the collector holds the restored image and the
 *   node's backing file is empty — pull the image, then continue numbering after it;
 * - an in-place revert made while nothing had the volume attached: the collector holds
 *   the revert (VolumeMeta.lastRestore) right after the node's last shipped entry — pull
 *   the changed blocks;
 * - a node whose clock is behind the collector's (a rescheduled pod): its entries would be
 *   refused as going back in time — seed the clock from the collector's newest time.
 * Serving first and shipping the stale device would make it the volume's newest state
 * (the history keeps the restore, but the volume would look reverted back).
 *
 * Everything else the collector may hold past the spool (a node crash lost the spool's
 * tail) is the shipper's rebase + full resync (shipper.ts), unchanged.
 */
export interface CatchUpOptions {
  volume: string;
  token: string;
  target: CollectorTarget;
  backing: Backend;
  spool: Spool;
  spoolDir: string;
  /** The backing file holds no data at all (just created, or no block allocated). */
  backingEmpty: boolean;
  /** How long to keep trying to reach the collector. */
  timeoutMs: number;
  /** Without it the node may serve anyway when the collector cannot be asked (async mode). */
  required: boolean;
  logger: Logger;
}

export interface CatchUpResult {
  /** 'pulled-image' | 'pulled-revert' | 'none' | 'unreachable' */
  action: 'pulled-image' | 'pulled-revert' | 'none' | 'unreachable';
  bytes: bigint;
  collectorSeq?: bigint;
}

/** A catch-up that began and did not finish: the backing file is partly filled. */
const PENDING = 'catch-up.json';

export async function catchUpFromCollector(o: CatchUpOptions): Promise<CatchUpResult> {
  const pendingFile = path.join(o.spoolDir, PENDING);
  const pending = await fs.readFile(pendingFile, 'utf8').then((t) => JSON.parse(t) as { kind: 'image' | 'revert'; fromSeq?: string }, () => undefined);
  const api = new CollectorApi(o.target);
  try {
    const st = await statusWithRetry(api, o);
    if (!st) {
      if (pending || o.required) {
        throw new RewindError(
          ErrorCodes.UNAVAILABLE,
          `cannot reach collector ${o.target.address} within ${Math.round(o.timeoutMs / 1000)} s to learn what volume "${o.volume}" holds; ` +
            (pending ? 'a fill from it was interrupted, so the device is incomplete and is not served' : 'the node does not serve a volume it cannot check') +
            ' — check the collector address, TLS and token, then start again',
        );
      }
      o.logger.warn('collector unreachable at start; serving from the local spool (async mode) without checking it for a restore', { volume: o.volume, collector: o.target.address });
      return { action: 'unreachable', bytes: 0n };
    }
    const w = st.detail.writer as { role?: string } | undefined;
    if (st.writerConnected && w?.role === 'restore') {
      throw new RewindError(ErrorCodes.VOLUME_BUSY, `volume "${o.volume}" is being filled by a VolumeRestore on collector ${o.target.address}; start the node once the restore completes`, { details: { volume: o.volume } });
    }
    o.spool.observeTime(st.durableTime);
    const D = st.durableSeq;
    const L = o.spool.lastSeq;
    const A = o.spool.ackedSeq;
    const fresh = L === 0n && A === 0n;
    const restore = lastRestoreOf(st);

    if (pending?.kind === 'image' || (fresh && o.backingEmpty && D > 0n)) {
      return await pull(api, o, pendingFile, { kind: 'image' }, D);
    }
    const revertFrom = pending?.kind === 'revert' && pending.fromSeq !== undefined ? BigInt(pending.fromSeq) : undefined;
    // The revert follows the node's last acknowledged entry directly and the node has
    // nothing unshipped: the entries past it are the revert, nothing of the node's own.
    if (revertFrom !== undefined || (D > L && L === A && restore && restore.fromSeq === A + 1n && restore.toSeq === D)) {
      return await pull(api, o, pendingFile, { kind: 'revert', fromSeq: revertFrom ?? A + 1n }, D);
    }
    if (D > L && restore && restore.toSeq > A) {
      throw new RewindError(
        ErrorCodes.JOURNAL_SEQ_GAP,
        `volume "${o.volume}" was restored in place on the collector (seqs ${restore.fromSeq}–${restore.toSeq}) while this node held writes it never shipped (spool seqs ${A + 1n}–${L}); ` +
          'serving either would lose the other. Restore the volume again into a new PVC from the point you want, or move this spool aside to accept the revert',
        { details: { volume: o.volume, collectorSeq: D, spoolSeq: L, ackedSeq: A } },
      );
    }
    return { action: 'none', bytes: 0n, collectorSeq: D };
  } finally {
    api.close();
  }
}

function lastRestoreOf(st: VolumeStatusView): { fromSeq: bigint; toSeq: bigint } | undefined {
  const r = st.detail.lastRestore as { fromSeq?: string; toSeq?: string } | undefined;
  return r?.fromSeq !== undefined && r.toSeq !== undefined ? { fromSeq: BigInt(r.fromSeq), toSeq: BigInt(r.toSeq) } : undefined;
}

async function statusWithRetry(api: CollectorApi, o: CatchUpOptions): Promise<VolumeStatusView | undefined> {
  const deadline = Date.now() + o.timeoutMs;
  let delay = 200;
  for (;;) {
    try {
      return await api.status(o.volume, o.token);
    } catch (err) {
      const code = (err as RewindError).code;
      // A refusal will not change by retrying: say it now. A volume the collector does not
      // know (first start, collector creating volumes on Hello) has nothing to pull.
      if (code === ErrorCodes.NOT_FOUND) return undefinedHistory(o);
      if (code === ErrorCodes.UNAUTHENTICATED || code === ErrorCodes.PERMISSION_DENIED || code === ErrorCodes.INVALID_ARGUMENT) throw err;
      if (Date.now() + delay > deadline) {
        o.logger.warn('collector status failed', { volume: o.volume, err });
        return undefined;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

/** NOT_FOUND: the volume has no history on the collector yet. */
function undefinedHistory(o: CatchUpOptions): VolumeStatusView {
  return { volume: o.volume, size: o.backing.size, generation: 0n, durableSeq: 0n, durableTime: 0n, windowOldest: 0n, windowNewest: 0n, journalBytes: 0n, writerConnected: false, detail: {} };
}

/**
 * Fill the backing file from the collector as of seq D (the whole image, or only the
 * blocks changed since the entry before the revert), durably, then continue the spool's
 * numbering after D. The pending file makes an interrupted fill start over on the next
 * open instead of serving (or shipping) a half-filled device.
 */
async function pull(api: CollectorApi, o: CatchUpOptions, pendingFile: string, kind: { kind: 'image' } | { kind: 'revert'; fromSeq: bigint }, D: bigint): Promise<CatchUpResult> {
  await fs.writeFile(pendingFile, JSON.stringify({ kind: kind.kind, ...(kind.kind === 'revert' ? { fromSeq: kind.fromSeq.toString() } : {}) }) + '\n');
  const started = Date.now();
  o.logger.info('filling the volume from the collector before serving', { volume: o.volume, kind: kind.kind, collectorSeq: D });
  let bytes = 0n;
  let lastLog = Date.now();
  const opts = kind.kind === 'revert' ? { changedSince: { seq: kind.fromSeq - 1n } } : {};
  for await (const c of api.restore(o.volume, o.token, { seq: D }, opts)) {
    if (c.data && c.data.length > 0) {
      await o.backing.pwrite(c.data, c.offset, { fua: false });
      bytes += BigInt(c.data.length);
    } else if (c.zeroLength > 0n && (kind.kind === 'revert' || !o.backingEmpty)) {
      // An empty backing file already reads zeros there; a revert must write them.
      for (let at = 0n; at < c.zeroLength; at += 1n << 30n) {
        const len = c.zeroLength - at < 1n << 30n ? c.zeroLength - at : 1n << 30n;
        await o.backing.zero(c.offset + at, Number(len), { fua: false, noHole: false });
      }
    }
    if (Date.now() - lastLog > 5_000) {
      lastLog = Date.now();
      o.logger.info('fill progress', { volume: o.volume, doneBytes: c.doneBytes, totalBytes: c.volumeSize });
    }
  }
  await o.backing.flush();
  const st = await api.status(o.volume, o.token);
  await o.spool.continueAfter(D, st.durableTime);
  await fs.rm(pendingFile, { force: true });
  o.logger.info('volume filled from the collector', { volume: o.volume, kind: kind.kind, bytes, collectorSeq: D, ms: Date.now() - started });
  return { action: kind.kind === 'image' ? 'pulled-image' : 'pulled-revert', bytes, collectorSeq: D };
}
