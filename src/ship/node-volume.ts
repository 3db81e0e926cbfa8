import fs from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { Backend } from '../nbd/backend.js';
import { FileBackend } from '../nbd/file-backend.js';
import { InflightApplies, journalFilter, type DurabilityMode } from './journal-filter.js';
import { redoJournalDir, redoSpool } from './redo.js';
import { runBaseCopy } from './base-copy.js';
import { checkUserMarkName, RESEND_BEGIN_MARK } from '../journal/resend-marks.js';
import { RangeLock } from './range-lock.js';
import { Shipper } from './shipper.js';
import { Spool } from './spool.js';
import { FlushWait, type DurabilityStatus, type FlushWaitOptions } from './flush-wait.js';
import { catchUpFromCollector } from './catch-up.js';
import type { HybridClock } from '../core/hlc.js';
import type { CollectorTarget } from '../rpc/transport.js';

/**
 * One protected volume on a node: the backing file, the spool, the journal filter in
 * front of the backing file, and (when a collector is given) the shipper streaming the
 * spool to it. `rewind serve`, `rewind up` and the CSI node plugin all assemble a volume
 * this way, so the durability rules live in one place.
 */
export interface NodeVolumeOptions {
  name: string;
  backingPath: string;
  /** Needed when the backing file does not exist yet; must match when it does. */
  size?: bigint;
  spoolDir: string;
  spoolMaxBytes: number;
  fullPolicy: 'block' | 'dirty-bitmap';
  mode: DurabilityMode;
  collector?: { target: CollectorTarget; token: string; bandwidthBytesPerSec?: number; coalesce?: boolean };
  /** How long flush-sync FLUSH/FUA (sync: every write) wait for the collector, and what then (flush-wait.ts). */
  flushWait?: FlushWaitOptions;
  /** How long to try reaching the collector at open before refusing (catch-up.ts); default 60 s. */
  connectTimeoutMs?: number;
  /** The spool's clock (tests give one that is behind the collector's). */
  clock?: HybridClock;
  logger?: Logger;
}

export interface NodeVolume {
  readonly name: string;
  readonly size: bigint;
  /** What the NBD server exports: every mutation journaled. */
  readonly backend: Backend;
  readonly spool: Spool;
  readonly shipper?: Shipper;
  readonly lock: RangeLock;
  /** Resolves when the initial copy / crash resync started at open has finished. */
  readonly resynced: Promise<void>;
  /** The durability the volume keeps right now (Degraded after a flush-sync wait timed out). */
  durability(): DurabilityStatus;
  /** Called when durability() changes; returns an unsubscribe function. */
  onDurability(cb: (s: DurabilityStatus) => void): () => void;
  /** Append a mark ordered with the writes around it; resolves when it is durable under the volume's mode. */
  mark(name: string): Promise<{ seq: bigint; time: bigint }>;
  close(): Promise<void>;
}

export async function openNodeVolume(o: NodeVolumeOptions): Promise<NodeVolume> {
  const log = o.logger ?? silentLogger;
  if (o.mode !== 'async' && !o.collector) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `durability mode ${o.mode} needs a collector; use async for a local-only journal`);
  }
  const backingEmpty = await holdsNoData(o.backingPath);
  // The spool is the backing file's write-ahead log (below), so its small writes may be
  // made after they are acknowledged (file-backend.ts writeBehind).
  const backing = await FileBackend.open(o.backingPath, {
    writeBehind: true,
    onWriteBehindFailure: (err) => log.error('backing file write failed after it was acknowledged; the volume refuses I/O until restarted, and the restart replays the spool onto it', { volume: o.name, err }),
    ...(o.size === undefined ? {} : { size: o.size }),
  });
  if (o.size !== undefined && backing.size !== o.size) {
    await backing.close();
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${o.backingPath} is ${backing.size} bytes, not ${o.size}; drop the size or use another file`);
  }
  await fs.mkdir(o.spoolDir, { recursive: true });
  // The spool is the volume's write-ahead log (journal-filter.ts `wal`): FLUSH syncs it
  // alone, so before acked entries are deleted the backing file must hold them durably.
  const applies = new InflightApplies();
  const spool = await Spool.open(o.spoolDir, {
    volumeSize: backing.size,
    maxBytes: o.spoolMaxBytes,
    fullPolicy: o.fullPolicy,
    // Without a collector nothing reads entries back from memory.
    tailCacheBytes: o.collector ? undefined : 0,
    logger: log.child({ component: 'spool', volume: o.name }),
    ...(o.clock ? { clock: o.clock } : {}),
    beforeFree: async () => {
      await applies.settled();
      await backing.flush();
    },
    // Nothing is served yet: no write can race this redo.
    beforeSetAside: async (journalDir) => {
      await redoJournalDir(journalDir, backing, log.child({ volume: o.name }));
    },
  });

  // Crash detection: the marker exists from open to clean close. Found at open, the
  // backing file may lack writes whose FLUSH completed (only the spool was synced): redo
  // the spool onto it first. Writes may also have reached the backing file without
  // reaching the spool, so the journal no longer describes the device: resend it all
  // (initialSync below).
  if (!o.collector) {
    // Without a collector the spool is the only history and nothing frees it: once full
    // (dirty-bitmap policy) it stops journaling. Say once where, durably, so `rewind journal
    // replay` refuses instants after it instead of replaying a journal that ends early.
    const stoppedFile = path.join(o.spoolDir, JOURNAL_STOPPED_FILE);
    let noted = await fs.access(stoppedFile).then(() => true, () => false);
    spool.onState((st) => {
      if (st !== 'dirty-tracking' || noted) return;
      noted = true;
      const at = { seq: spool.lastSeq.toString(), time: spool.lastTime.toString(), reason: 'spool full with no collector to free it' };
      log.warn('spool full: the local journal stops here; the device keeps serving, and instants after this are not restorable from the spool', { volume: o.name, ...at });
      void fs.writeFile(stoppedFile, JSON.stringify(at) + '\n').catch((err: unknown) => log.error('cannot record where the journal stopped', { err }));
    });
  }
  const marker = path.join(o.spoolDir, 'node.running');
  const crashed = await fs.access(marker).then(() => true, () => false);
  if (crashed) await redoSpool(spool, backing, log.child({ volume: o.name }));
  // `rewind journal replay` reads the volume size from here.
  await fs.writeFile(path.join(o.spoolDir, 'volume.json'), JSON.stringify({ name: o.name, size: backing.size.toString(), backing: path.resolve(o.backingPath) }) + '\n');

  if (o.collector) {
    // Before anything is served: the collector may hold a restore this device lacks.
    try {
      await catchUpFromCollector({
        volume: o.name,
        token: o.collector.token,
        target: o.collector.target,
        backing,
        spool,
        spoolDir: o.spoolDir,
        backingEmpty: backingEmpty && spool.lastSeq === 0n,
        timeoutMs: o.connectTimeoutMs ?? 60_000,
        // Async mode may serve without the collector, except a device that may be
        // waiting for a restored image: a new, empty one.
        required: o.mode !== 'async' || (backingEmpty && spool.lastSeq === 0n && spool.ackedSeq === 0n),
        logger: log.child({ component: 'catch-up', volume: o.name }),
      });
    } catch (err) {
      await spool.close().catch(() => undefined);
      await backing.close().catch(() => undefined);
      throw err;
    }
  }

  const lock = new RangeLock();
  let shipper: Shipper | undefined;
  let flushWaitRef: FlushWait | undefined;
  if (o.collector) {
    shipper = new Shipper({
      spool,
      volume: o.name,
      size: backing.size,
      token: o.collector.token,
      target: o.collector.target,
      mode: o.mode,
      ...(o.collector.bandwidthBytesPerSec ? { bandwidthBytesPerSec: o.collector.bandwidthBytesPerSec } : {}),
      ...(o.collector.coalesce ? { coalesce: true } : {}),
      // The flush-wait deadline's Degraded state reaches the ProtectedVolume through the Report.
      problemOf: () => {
        const d = flushWaitRef?.status();
        return d?.degraded && d.reason ? { reason: d.reason, message: d.message ?? d.reason } : undefined;
      },
      logger: log.child({ component: 'shipper', volume: o.name }),
    });
    shipper.start();
  }
  const remote = shipper;
  const flushWait = remote && o.mode !== 'async'
    ? new FlushWait({
        mode: o.mode,
        ...(o.flushWait ? { options: o.flushWait } : {}),
        waitDurable: (seq, signal) => remote.waitDurable(seq, signal),
        waitResent: (n, signal) => spool.waitResent(n, signal),
        lastSeq: () => spool.lastSeq,
        logger: log.child({ component: 'flush-wait', volume: o.name }),
      })
    : undefined;
  flushWaitRef = flushWait;
  const asyncStatus: DurabilityStatus = { mode: o.mode, effective: o.mode, degraded: false, timeouts: 0, flushWait: { timeoutMs: 0, policy: 'async' } };
  const backend = await journalFilter({
    spool,
    mode: o.mode,
    lock,
    wal: true,
    applies,
    ...(flushWait ? { waitRemote: (seq: bigint, w?: { diverted?: number }) => flushWait.wait(seq, w) } : {}),
  })(backing);

  await fs.writeFile(marker, `${process.pid}\n`);
  // A failed resync is logged and retried at the next open (the marker or the spool's
  // flags still say so); it must not take the data path down with it.
  let resyncFailed = false;
  const logFailure = (err: unknown) => {
    resyncFailed = true;
    log.error('resync failed; it is retried at the next start', { volume: o.name, err });
  };
  // In flush-sync and sync modes nothing can be made durable without the collector, so
  // waiting for it here costs no availability, and it settles a rebase (spool.ts) before
  // the first write: no FLUSH can then be acknowledged against a seq the collector holds
  // with other content.
  if (shipper && o.mode !== 'async') await shipper.firstWelcome;
  let resynced = initialSync(o.name, backing, spool, lock, crashed, log).catch(logFailure);
  // A rebase (async mode: possible after writes began) sets the journal aside; resend all.
  spool.on('rebased', () => {
    resynced = resynced.then(() => initialSync(o.name, backing, spool, lock, false, log)).catch(logFailure);
  });
  // When acks free the spool after it fell back to dirty tracking, resend what it missed
  // (one resend queued at a time; it picks up everything dirty when it starts).
  let resendQueued = false;
  spool.on('resend-wanted', () => {
    if (resendQueued) return;
    resendQueued = true;
    resynced = resynced.then(() => {
      resendQueued = false;
      return initialSync(o.name, backing, spool, lock, false, log);
    }).catch(logFailure);
  });

  let closed = false;
  return {
    get resynced() {
      return resynced;
    },
    name: o.name,
    size: backing.size,
    backend,
    spool,
    ...(shipper ? { shipper } : {}),
    lock,
    durability: () => flushWait?.status() ?? { ...asyncStatus },
    onDurability: (cb) => flushWait?.onChange(cb) ?? (() => undefined),
    async mark(name) {
      checkUserMarkName(name);
      // A mark promises an exact point: while a resync runs, the far side does not yet
      // hold the whole device, so wait for it first.
      await resynced;
      // Holding the whole device orders the mark after every write already acknowledged
      // and before every write that starts later.
      const release = await lock.acquireAll(backing.size);
      let rec;
      try {
        rec = await spool.mark(name);
      } finally {
        release();
      }
      await spool.sync();
      if (shipper && o.mode !== 'async') await shipper.waitDurable(rec.seq);
      return { seq: rec.seq, time: rec.time };
    },
    async close() {
      if (closed) return;
      closed = true;
      flushWait?.close();
      await resynced;
      await spool.sync();
      // A backing file that failed (a write-behind write after its reply) is closed all the
      // same, shipper and spool first, and the failure is reported at the end with the
      // running marker kept: the next start replays the spool onto it.
      let backingFailure: unknown;
      await backing.flush().catch((err: unknown) => (backingFailure = err));
      if (shipper) {
        // Give the collector a bounded chance to take the tail; what is left stays in the
        // spool and is shipped on the next start.
        const ac = new AbortController();
        const t = setTimeout(() => ac.abort(), 5_000);
        await shipper.drain(ac.signal).catch(() => {});
        clearTimeout(t);
        await shipper.stop();
      }
      await spool.close();
      await backing.close().catch((err: unknown) => (backingFailure ??= err));
      if (backingFailure !== undefined) throw backingFailure;
      // Kept after a failed resync: the next start must resend the whole device again.
      if (!resyncFailed) await fs.rm(marker, { force: true });
    },
  };
}

/**
 * Bring the journal in line with the device, in the background while writes continue
 * (base-copy.ts explains why the range lock makes that exact):
 * - first protection of a volume that already holds data: copy what is allocated;
 * - after a crash, or when the spool says its dirty tracking cannot be trusted: copy the
 *   whole device, zero ranges included (the other side may hold older data there);
 * - dirty extents left from a full spool: copy just those.
 */
async function initialSync(name: string, backing: Backend, spool: Spool, lock: RangeLock, crashed: boolean, log: Logger): Promise<void> {
  const full = crashed || spool.needsFullResync;
  const dirty = spool.dirtyExtents();
  let why: string;
  let opts: Parameters<typeof runBaseCopy>[0] = { backend: backing, spool, lock, logger: log };
  if (full) {
    why = crashed ? 'unclean shutdown' : 'dirty tracking not trustworthy';
    opts = { ...opts, zeros: 'record' };
  } else if (spool.lastSeq === 0n) {
    why = 'initial copy';
  } else if (dirty.length > 0) {
    why = 'dirty extents from a full spool';
    opts = { ...opts, zeros: 'record', ranges: dirty };
  } else {
    return;
  }
  // First, before this function waits for anything: every instant from here to the END
  // mark is refused by the collector rather than restored from a partial copy.
  const begun = spool.mark(RESEND_BEGIN_MARK);
  log.info('resync started', { volume: name, why });
  await begun;
  const res = await runBaseCopy(opts);
  // If the spool filled up during the copy, some chunks or writes went to the dirty bitmap
  // instead. Each marked its blocks again since dirtyExtents() above, and clearing keeps
  // every such block dirty (spool-dirty-bitmap.ts clear), so what was journaled is cleared
  // and the rest waits for the next resend. Clearing nothing in that case (as before) never
  // converged once more was dirty than the spool holds: every round resent all of it, part
  // of it went to the bitmap again, and a flush-sync FLUSH waiting for the resend hung.
  if (full) await spool.fullResyncDone();
  else if (dirty.length > 0) await spool.clearDirty(dirty);
  // From here on the collector's copy is whole again, if nothing is dirty any more
  // (endResend checks; a write that went to the bitmap meanwhile ends it with its resend).
  spool.endResend();
  await spool.sync();
  log.info('resync done', { volume: name, why, bytes: res.bytesCopied, protectionStartSeq: res.protectionStartSeq });
}

/** In a spool without a collector: where its journal stopped because the spool was full. */
export const JOURNAL_STOPPED_FILE = 'journal-stopped.json';

/** True when the path is missing or a regular file with no block allocated (all hole). */
async function holdsNoData(p: string): Promise<boolean> {
  const st = await fs.stat(p, { bigint: true }).catch(() => undefined);
  if (!st) return true;
  return st.isFile() && st.blocks === 0n;
}
