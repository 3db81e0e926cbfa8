import type * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { encodeHeader, type JournalRecord, type RecordKind } from '../../journal/record.js';
import { checkVolumeName, remoteCreateRefused, unauthenticated } from './auth.js';
import { AppendAdmission, batchBytes } from './append-limits.js';
import type { AppendRequestMsg, AppendResponseMsg, BatchMsg, EntryMsg, HelloMsg } from '../../rpc/messages.js';
import { toStatus } from '../../rpc/status.js';
import type { StorePort, VolumePort } from './store-port.js';

/** Groups handed to the store at once (see pump). */
const APPENDS_IN_FLIGHT = 2;

/**
 * grpc-js hands a server stream's messages to a Readable with the default object-mode
 * highWaterMark of 16, so a paused stream still took 16 more messages (up to 80 MiB each)
 * off the wire. One read ahead keeps the pipeline going; HTTP/2 flow control holds the
 * rest at the shipper. Internal to Node's streams: where the field is missing this is a
 * no-op and the bound is 16 messages looser.
 */
function readAheadOne(call: AppendCall): void {
  const rs = (call as unknown as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (rs && typeof rs.highWaterMark === 'number') rs.highWaterMark = 1;
}

type AppendCall = grpc.ServerDuplexStream<AppendRequestMsg, AppendResponseMsg>;

interface Session {
  id: number;
  volume: string;
  /** A VolumeRestore filling the volume, or the node that serves it. */
  role: 'node' | 'restore';
  /** What the writer said of itself: its mode (Hello) and its newest entry (Report). */
  writer: WriterInfo;
  /** End this stream: a newer one took the volume over, or `why`. */
  displace(why?: RewindError): void;
  /** Settles when no append of this stream is in flight. */
  idle(): Promise<void>;
}

/** What the volume status says of its writer (detail.writer; the controller reads it). */
export interface WriterInfo {
  role: 'node' | 'restore';
  durability?: string;
  latestSeq?: bigint;
  latestTimeNs?: bigint;
  spoolBytes?: bigint;
  /** Wall time (ms) of the last Report. */
  reportedAtMs?: number;
  /** A condition the node reports (Report.problem): PascalCase reason and its message. */
  problem?: string;
  problemMessage?: string;
}

/**
 * One writer per volume. A newer Append stream DISPLACES the older one (which ends with
 * UNAVAILABLE) rather than being refused: after a network cut the server often still
 * holds the dead stream until keepalive notices, and refusing would lock the reconnecting
 * shipper out for that long. The newcomer waits for the old stream's in-flight append to
 * finish before reading the durable seq it welcomes with, so the resume point is exact.
 */
export class WriterRegistry {
  private readonly sessions = new Map<string, Session>();
  private nextId = 1;

  newId(): number {
    return this.nextId++;
  }

  async claim(s: Session, logger: Logger): Promise<void> {
    const old = this.sessions.get(s.volume);
    // A node must not take over (and then serve) a volume a restore is still filling;
    // the restore writer itself may displace anything (the controller checked first).
    if (old && old !== s && old.role === 'restore' && s.role === 'node') {
      throw new RewindError(
        ErrorCodes.VOLUME_BUSY,
        `volume "${s.volume}" is being filled by a VolumeRestore; the node can serve it once the restore completes (see the VolumeRestore's status)`,
        { details: { volume: s.volume } },
      );
    }
    this.sessions.set(s.volume, s);
    if (old && old !== s) {
      logger.warn('append stream displaced by a newer one', { volume: s.volume, old: old.id, new: s.id });
      old.displace();
      await old.idle();
    }
  }

  release(s: Session): void {
    if (this.sessions.get(s.volume) === s) this.sessions.delete(s.volume);
  }

  connected(volume: string): boolean {
    return this.sessions.has(volume);
  }

  /** The connected writer's report, if a writer is connected. */
  writerInfo(volume: string): WriterInfo | undefined {
    return this.sessions.get(volume)?.writer;
  }

  /** End the volume's stream, if any (its token changed or the volume was deleted). */
  displace(volume: string, why: RewindError): void {
    this.sessions.get(volume)?.displace(why);
  }

  displaceAll(): void {
    for (const s of [...this.sessions.values()]) s.displace();
  }
}

export interface AppendDeps {
  store: StorePort;
  registry: WriterRegistry;
  logger: Logger;
  /** Create unknown volumes on first Hello (default true). */
  createVolumes: boolean;
  /** Whether a call comes from this machine: creation without an admin token needs it. */
  isLocal: (call: AppendCall) => boolean;
  /** Bounds on streams and the bytes they hold, shared by all streams of the server. */
  admission: AppendAdmission;
}

/** Entry message → journal record, refusing it if the CRC the shipper computed disagrees. */
export function entryToRecord(e: EntryMsg, volume: string): JournalRecord {
  const rec: JournalRecord = {
    kind: e.kind as RecordKind,
    flags: e.flags,
    seq: BigInt(e.seq),
    time: BigInt(e.time),
    offset: BigInt(e.offset),
    length: e.length,
    payload: e.payload ?? Buffer.alloc(0),
  };
  if (rec.kind < 1 || rec.kind > 4) {
    throw new RewindError(ErrorCodes.PROTOCOL, `entry seq ${rec.seq} of volume "${volume}" has unknown kind ${rec.kind}`);
  }
  const crc = encodeHeader(rec).readUInt32LE(44);
  if (crc !== e.crc >>> 0) {
    throw new RewindError(
      ErrorCodes.CHECKSUM_MISMATCH,
      `entry seq ${rec.seq} of volume "${volume}" arrived with CRC 0x${(e.crc >>> 0).toString(16)} but its bytes give 0x${crc.toString(16)}; the shipper resends after reconnecting`,
      { details: { volume, seq: rec.seq } },
    );
  }
  rec.crc = crc;
  return rec;
}

async function openVolume(deps: AppendDeps, hello: HelloMsg, local: boolean): Promise<VolumePort> {
  checkVolumeName(hello.volume);
  if (!hello.token) throw unauthenticated(hello.volume);
  const existing = await deps.store.volume(hello.volume);
  if (existing) {
    if (!existing.checkToken(hello.token)) throw unauthenticated(hello.volume);
    const size = BigInt(hello.size || '0');
    if (size !== 0n && size !== existing.size) {
      throw new RewindError(
        ErrorCodes.INVALID_ARGUMENT,
        `volume "${hello.volume}" is ${existing.size} bytes on the collector but the shipper reports ${size}; a resized volume needs a full resync under a new volume name or generation`,
        { details: { volume: hello.volume, collectorSize: existing.size, shipperSize: size } },
      );
    }
    return existing;
  }
  if (!deps.createVolumes) {
    throw new RewindError(
      ErrorCodes.NOT_FOUND,
      `volume "${hello.volume}" is not registered with this collector, which creates volumes only through RegisterVolume (it runs with an admin token); the ProtectedVolume must be registered first — check that it exists and is Ready, or the volume name and collector address the node uses`,
      { details: { volume: hello.volume } },
    );
  }
  if (!local) throw remoteCreateRefused(hello.volume, 'Hello');
  const size = BigInt(hello.size || '0');
  if (size <= 0n) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `Hello for new volume "${hello.volume}" must carry its size in bytes`);
  deps.logger.info('volume created on first hello', { volume: hello.volume, size });
  return deps.store.createVolume(hello.volume, size, { token: hello.token });
}

export function appendHandler(deps: AppendDeps): (call: AppendCall) => void {
  const admission = deps.admission;
  return (call) => {
    const id = deps.registry.newId();
    let log = deps.logger.child({ stream: id });
    let phase: 'hello' | 'opening' | 'streaming' | 'done' = 'hello';
    let vol: VolumePort | undefined;
    let session: Session | undefined;
    const queue: BatchMsg[] = [];
    /** Bytes of batches received and not yet appended (queued or with the store). */
    let heldBytes = 0;
    let queuedBytes = 0;
    let cancelRoomWait: (() => void) | undefined;
    /** The volume this stream counts against (admission.admitVolume), once its Hello came. */
    let countedVolume: string | undefined;
    let slotFreed = false;
    let helloTimer: NodeJS.Timeout | undefined;
    /** Settles once every append handed to the store so far is acknowledged or failed. */
    let acked: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let clientEnded = false;
    /** A restore writer's first seq, and the last seq recorded in VolumeMeta.lastRestore. */
    let restoreFrom: bigint | undefined;
    let restoreNoted = 0n;

    /**
     * The stream's slot and its volume's share are given back once it has ended and the
     * store has finished what it was handed: until then that memory is still held.
     */
    const freeSlot = (): void => {
      clearTimeout(helloTimer);
      cancelRoomWait?.();
      admission.sub(queuedBytes);
      heldBytes -= queuedBytes;
      queuedBytes = 0;
      queue.length = 0;
      void acked.finally(() => {
        if (slotFreed) return;
        slotFreed = true;
        admission.endStream();
        if (countedVolume !== undefined) admission.endVolume(countedVolume);
      });
    };

    const finish = (err?: unknown): void => {
      if (phase === 'done') return;
      phase = 'done';
      freeSlot();
      if (session) deps.registry.release(session);
      if (err === undefined) {
        call.end();
        return;
      }
      const st = toStatus(err);
      log.warn('append stream ended with error', { code: st.metadata.get('rewind-error-code')[0], message: st.message });
      // grpc-js turns an 'error' emitted on a server stream into the call's final status.
      call.emit('error', st);
    };

    // Group commit: every batch that arrived while the appends in flight were being written
    // goes into one append (one write, one fdatasync, one ack), so the disk's flush latency
    // is paid per group, not per batch. Two groups may be in flight: the store checks and
    // copies the second while the first is on its way to the disk. Acks leave in order.
    const pump = (): void => {
      while (phase === 'streaming' && queue.length > 0 && inFlight < APPENDS_IN_FLIGHT) {
        const group = queue.splice(0, queue.length);
        const groupBytes = queuedBytes;
        queuedBytes = 0;
        let appended: Promise<bigint>;
        try {
          const floor = vol!.durableSeq;
          const records: JournalRecord[] = [];
          for (const batch of group) for (const e of batch.entries) {
            const r = entryToRecord(e, vol!.name);
            if (r.seq > floor) records.push(r);
          }
          // Even when nothing is new: the store then acknowledges what earlier groups made
          // durable, once they are fully taken in (durableSeq alone may run ahead of that).
          appended = vol!.append(records);
        } catch (err) {
          appended = Promise.reject(err);
        }
        appended.catch(() => undefined); // handled in order below
        inFlight++;
        acked = acked
          .then(async () => {
            const durable = await appended;
            // A restore's entries are recorded as such before they are acknowledged, so a
            // node that starts later pulls them instead of taking them for its own lost tail.
            if (session?.role === 'restore' && restoreFrom !== undefined && durable >= restoreFrom && durable > restoreNoted) {
              await vol!.noteRestore(restoreFrom, durable);
              restoreNoted = durable;
            }
            if (phase === 'streaming') call.write({ msg: 'ack', ack: { durable_seq: durable.toString() } });
          })
          .catch((err: unknown) => finish(err))
          .finally(() => {
            inFlight--;
            heldBytes -= groupBytes;
            admission.sub(groupBytes);
            flow();
            pump();
          });
      }
      if (phase === 'streaming' && clientEnded && queue.length === 0 && inFlight === 0) finish();
    };

    /**
     * Read on while this stream and all of them hold less than their bounds; otherwise
     * pause (HTTP/2 flow control then holds the shipper) until an append settles here or,
     * for the total, anywhere.
     */
    const flow = (): void => {
      if (phase !== 'streaming') return;
      const overStream = heldBytes >= admission.limits.streamBytes;
      if (!overStream && !admission.overTotal) {
        if (call.isPaused()) call.resume();
        return;
      }
      if (!call.isPaused()) call.pause();
      if (!overStream && !cancelRoomWait) {
        cancelRoomWait = admission.onRoom(() => {
          cancelRoomWait = undefined;
          flow();
        });
      }
    };

    const refused = admission.admitStream();
    if (refused) {
      phase = 'done';
      slotFreed = true;
      log.warn('append stream refused', { message: refused.message });
      call.emit('error', toStatus(refused));
      return;
    }
    readAheadOne(call);
    helloTimer = setTimeout(() => {
      if (phase === 'hello') finish(new RewindError(ErrorCodes.PROTOCOL, `no Hello within ${admission.limits.helloTimeoutMs} ms of opening the Append stream; a shipper sends it first`));
    }, admission.limits.helloTimeoutMs);
    helloTimer.unref?.();

    call.on('data', (req: AppendRequestMsg) => {
      if (phase === 'done') return;
      if (phase === 'hello') {
        if (req.msg !== 'hello' || !req.hello) {
          finish(new RewindError(ErrorCodes.PROTOCOL, 'the first message on an Append stream must be Hello'));
          return;
        }
        phase = 'opening';
        call.pause();
        clearTimeout(helloTimer);
        const hello = req.hello;
        log = log.child({ volume: hello.volume });
        const busy = admission.admitVolume(hello.volume);
        if (busy) {
          finish(busy);
          return;
        }
        countedVolume = hello.volume;
        void (async () => {
          try {
            vol = await openVolume(deps, hello, deps.isLocal(call));
            const role = hello.restore_writer === true ? 'restore' : 'node';
            session = {
              id,
              volume: vol.name,
              role,
              writer: { role, ...(hello.durability ? { durability: hello.durability } : {}) },
              displace: (why) => finish(why ?? new RewindError(ErrorCodes.UNAVAILABLE, `a newer Append stream took over volume "${hello.volume}"`)),
              idle: () => acked,
            };
            await deps.registry.claim(session, log);
            if ((phase as string) === 'done') return;
            // Generation 0 = the shipper does not track generations yet.
            if (BigInt(hello.generation || '0') !== 0n && BigInt(hello.generation) !== vol.generation) {
              log.warn('shipper generation differs from the collector', { shipper: hello.generation, collector: vol.generation });
            }
            phase = 'streaming';
            if (role === 'restore') restoreFrom = vol.durableSeq + 1n;
            log.info('append stream open', { durableSeq: vol.durableSeq, shipperBelieves: hello.last_durable_seq });
            call.write({ msg: 'welcome', welcome: { durable_seq: vol.durableSeq.toString(), generation: vol.generation.toString(), latest_time_ns: vol.latestTime.toString() } });
            flow();
            pump();
          } catch (err) {
            finish(err);
          }
        })();
        return;
      }
      if (req.msg === 'report' && req.report) {
        if (session) {
          const r = req.report;
          Object.assign(session.writer, { latestSeq: BigInt(r.latest_seq), latestTimeNs: BigInt(r.latest_time_ns), spoolBytes: BigInt(r.spool_bytes), reportedAtMs: Date.now() });
          // The node's own problem (shipper.ts), shown by the controller as Degraded; cleared when it reports none.
          if (r.problem) Object.assign(session.writer, { problem: r.problem.slice(0, 64), problemMessage: (r.problem_message ?? '').slice(0, 1024) });
          else { delete session.writer.problem; delete session.writer.problemMessage; }
        }
        return;
      }
      if (req.msg !== 'batch' || !req.batch) {
        finish(new RewindError(ErrorCodes.PROTOCOL, 'only Batch and Report messages may follow Hello on an Append stream'));
        return;
      }
      const bytes = batchBytes(req.batch);
      queue.push(req.batch);
      queuedBytes += bytes;
      heldBytes += bytes;
      admission.add(bytes);
      flow();
      pump();
    });
    call.on('end', () => {
      clientEnded = true;
      if (phase === 'streaming' && inFlight === 0 && queue.length === 0) finish();
      else if (phase === 'hello') finish();
    });
    call.on('cancelled', () => {
      if (phase !== 'done') freeSlot();
      phase = 'done';
      if (session) deps.registry.release(session);
    });
    call.on('error', () => {
      if (phase !== 'done') {
        phase = 'done';
        freeSlot();
      }
      if (session) deps.registry.release(session);
    });
  };
}
