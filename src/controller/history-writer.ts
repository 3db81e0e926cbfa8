import type * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { RecordKind, encodeHeader, type JournalRecord } from '../journal/record.js';
import type { RestoreChunkView } from '../rpc/collector-api.js';
import type { AppendRequestMsg, AppendResponseMsg, EntryMsg } from '../rpc/messages.js';
import { fromGrpcError } from '../rpc/status.js';
import { collectorClient, type CollectorTarget } from '../rpc/transport.js';

/** Entries per batch and bytes in flight: one batch stays well under the 80 MiB message cap. */
const BATCH_BYTES = 8 << 20;
const MAX_UNACKED_BYTES = 64 << 20;
/** Restore chunks larger than this are cut, so no journal record nears its 64 MiB cap. */
const MAX_ENTRY_BYTES = 4 << 20;

export interface HistoryWriteResult {
  firstSeq: bigint;
  lastSeq: bigint;
  bytes: bigint;
}

/**
 * Writes a restored image (or only its changed blocks) into a collector volume's journal,
 * as a writer of that volume: Hello → Welcome (the collector's durable seq) → entries from
 * durable + 1 on, each chunk a WRITE or a ZERO record → wait for the ack of the last one.
 * This is how a VolumeRestore lands: the target volume's history then holds the restored
 * state as ordinary writes (so a revert can itself be undone), and the node side of the
 * target fills its device from the collector before it serves it.
 *
 * The caller must make sure no node is streaming the volume: a second writer displaces
 * the first (the collector answers the older stream ABORTED).
 */
export async function writeHistory(
  target: CollectorTarget,
  volume: string,
  token: string,
  size: bigint,
  chunks: AsyncIterable<RestoreChunkView>,
  opts: { minTimeNs: bigint; nowNs: () => bigint; onProgress?: (done: bigint, total: bigint) => void; signal?: AbortSignal },
): Promise<HistoryWriteResult> {
  const client = collectorClient(target);
  const call = (client.Append as () => grpc.ClientDuplexStream<AppendRequestMsg, AppendResponseMsg>).call(client);
  let failed: unknown;
  let welcome: (seq: bigint) => void = () => undefined;
  const welcomed = new Promise<bigint>((resolve) => (welcome = resolve));
  let acked = 0n;
  let ackWake: (() => void) | undefined;
  const waitAck = () => new Promise<void>((r) => (ackWake = r));
  call.on('data', (m: AppendResponseMsg) => {
    if (m.msg === 'welcome' && m.welcome) welcome(BigInt(m.welcome.durable_seq));
    else if (m.msg === 'ack' && m.ack) {
      acked = BigInt(m.ack.durable_seq);
      ackWake?.();
    }
  });
  const fail = (err: unknown) => {
    failed ??= fromGrpcError(err, `writing restored history into volume ${volume} on ${target.address}`);
    ackWake?.();
    welcome(-1n);
  };
  call.on('error', fail);
  call.on('end', () => fail(new RewindError(ErrorCodes.UNAVAILABLE, 'the collector ended the append stream')));
  const abort = () => fail(new RewindError(ErrorCodes.CLOSED, 'restore cancelled'));
  opts.signal?.addEventListener('abort', abort, { once: true });

  try {
    call.write({ msg: 'hello', hello: { volume, size: size.toString(), generation: '0', token, last_durable_seq: '0', restore_writer: true } } as AppendRequestMsg);
    const durable = await welcomed;
    if (failed) throw failed;
    let seq = durable;
    const firstSeq = durable + 1n;
    // Entry times must pass every time the collector already holds, and never go back.
    let time = opts.minTimeNs;
    const nextTime = () => {
      const now = opts.nowNs();
      time = now > time ? now : time + 1n;
      return time;
    };
    let batch: EntryMsg[] = [];
    let batchBytes = 0;
    let sentBytes = 0n;
    const unacked: Array<{ seq: bigint; bytes: number }> = [];
    let inflight = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      call.write({ msg: 'batch', batch: { entries: batch } } as AppendRequestMsg);
      unacked.push({ seq, bytes: batchBytes });
      inflight += batchBytes;
      batch = [];
      batchBytes = 0;
      while (inflight > MAX_UNACKED_BYTES && !failed) {
        await waitAck();
        while (unacked.length && unacked[0]!.seq <= acked) inflight -= unacked.shift()!.bytes;
      }
      if (failed) throw failed;
    };
    const push = async (rec: Omit<JournalRecord, 'seq' | 'time' | 'flags'>) => {
      seq += 1n;
      const r: JournalRecord = { ...rec, seq, time: nextTime(), flags: 0 };
      batch.push({ seq: r.seq, time: r.time, kind: r.kind, flags: r.flags, offset: r.offset, length: r.length, payload: r.payload, crc: encodeHeader(r).readUInt32LE(44) });
      batchBytes += r.payload.length + 64;
      if (batchBytes >= BATCH_BYTES) await flush();
    };
    for await (const c of chunks) {
      if (failed) throw failed;
      if (c.data && c.data.length > 0) {
        for (let at = 0; at < c.data.length; at += MAX_ENTRY_BYTES) {
          const part = c.data.subarray(at, Math.min(c.data.length, at + MAX_ENTRY_BYTES));
          await push({ kind: RecordKind.Write, offset: c.offset + BigInt(at), length: part.length, payload: part });
        }
        sentBytes += BigInt(c.data.length);
      } else if (c.zeroLength > 0n) {
        // ZERO records carry a 32-bit length: a long zero run becomes several.
        for (let at = 0n; at < c.zeroLength; at += 1n << 30n) {
          const len = c.zeroLength - at < 1n << 30n ? c.zeroLength - at : 1n << 30n;
          await push({ kind: RecordKind.Zero, offset: c.offset + at, length: Number(len), payload: Buffer.alloc(0) });
        }
      }
      opts.onProgress?.(c.doneBytes, c.volumeSize);
    }
    await flush();
    while (acked < seq && !failed) await waitAck();
    if (failed) throw failed;
    return { firstSeq, lastSeq: seq, bytes: sentBytes };
  } finally {
    opts.signal?.removeEventListener('abort', abort);
    call.end();
    call.cancel();
    client.close();
  }
}
