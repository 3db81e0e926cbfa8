import { PassThrough, type Readable } from 'node:stream';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { RestoreChunk } from '../store/image-emitter.js';
import type { Point, VolumeStore } from '../store/volume-store.js';

/**
 * Changed-blocks download (`GET /v1/volumes/:v/image?at=P&changedSince=Q`), content type
 * `application/vnd.rewind.extents.v1`. Binary, big-endian, so a multi-GiB delta streams
 * without base64's 33 % and without buffering:
 *
 *   stream  := magic "RWX1" | u64 volumeSize | frame* | end
 *   frame   := u8 kind (1 = data, 2 = zero) | u64 offset | u32 length | data[length] if kind = 1
 *   end     := u8 0 | u64 totalBytesInFrames | u32 0
 *
 * Frames are ascending and non-overlapping; they cover exactly the bytes that differ
 * between Q and P, with P's content. Applying them to an image of Q yields P (in-place
 * revert). A response without the end frame was cut short (the restore failed after the
 * headers were sent) and must be discarded.
 */
export const FRAMED_CONTENT_TYPE = 'application/vnd.rewind.extents.v1';
export const FRAME_MAGIC = Buffer.from('RWX1', 'ascii');
export const FRAME_DATA = 1;
export const FRAME_ZERO = 2;
export const FRAME_END = 0;
const FRAME_HEADER = 13;

/** Zeros written for holes in a full image, at most this many bytes per write. */
const ZERO_BLOCK = Buffer.alloc(1024 * 1024);
const HIGH_WATER = 4 * 1024 * 1024;

function frameHeader(kind: number, offset: bigint, length: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h.writeUInt8(kind, 0);
  h.writeBigUInt64BE(offset, 1);
  h.writeUInt32BE(length, 9);
  return h;
}

/** A writer honouring back-pressure; throws CLOSED once the client went away (stops the restore). */
function backpressuredWriter(out: PassThrough): (b: Buffer) => Promise<void> {
  return async (b) => {
    if (out.destroyed) throw new RewindError(ErrorCodes.CLOSED, 'the HTTP client closed the download');
    if (out.write(b)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        out.off('drain', done);
        out.off('close', done);
        resolve();
      };
      out.on('drain', done);
      out.on('close', done);
    });
  };
}

export interface ImageDownload {
  stream: Readable;
  contentType: string;
  /** Known up front only for a full image. */
  contentLength?: bigint;
}

/**
 * Start a download. The points are resolved first (synchronously) so a bad point becomes
 * a proper JSON error before any header is sent; then the restore runs against the
 * resolved seqs and streams in order.
 */
export function startImageDownload(args: { vol: VolumeStore; at: Point; changedSince?: Point; log: Logger }): ImageDownload {
  const { vol, log } = args;
  const at = { seq: vol.resolve(args.at).seq };
  const since = args.changedSince ? { seq: vol.resolve(args.changedSince).seq } : undefined;
  const out = new PassThrough({ highWaterMark: HIGH_WATER });
  const write = backpressuredWriter(out);
  let next = 0n;
  let framed = 0n;

  const fillZeros = async (upTo: bigint): Promise<void> => {
    while (next < upTo) {
      const n = Number(upTo - next < BigInt(ZERO_BLOCK.length) ? upTo - next : BigInt(ZERO_BLOCK.length));
      await write(ZERO_BLOCK.subarray(0, n));
      next += BigInt(n);
    }
  };
  const fullSink = async (c: RestoreChunk): Promise<void> => {
    await fillZeros(c.offset); // defensive: a gap the emitter skipped reads as zeros
    if (c.data) {
      await write(c.data.subarray(0, c.length));
      next += BigInt(c.length);
    } else {
      await fillZeros(c.offset + BigInt(c.length));
    }
  };
  const framedSink = async (c: RestoreChunk): Promise<void> => {
    if (c.data) {
      await write(frameHeader(FRAME_DATA, c.offset, c.length));
      await write(c.data.subarray(0, c.length));
    } else {
      await write(frameHeader(FRAME_ZERO, c.offset, c.length));
    }
    framed += BigInt(c.length);
  };

  const run = async (): Promise<void> => {
    if (since) {
      const head = Buffer.alloc(12);
      FRAME_MAGIC.copy(head, 0);
      head.writeBigUInt64BE(vol.size, 4);
      await write(head);
      await vol.restore(at, framedSink, { changedSince: since });
      await write(frameHeader(FRAME_END, framed, 0));
    } else {
      await vol.restore(at, fullSink);
      await fillZeros(vol.size);
    }
    // Restore count, duration and bytes are recorded around VolumeStore.restore (src/metrics/observe.ts).
    out.end();
  };
  run().catch((err: unknown) => {
    log.warn('image download aborted', { volume: vol.name, err });
    out.destroy(err instanceof Error ? err : new Error(String(err)));
  });
  return since
    ? { stream: out, contentType: FRAMED_CONTENT_TYPE }
    : { stream: out, contentType: 'application/octet-stream', contentLength: vol.size };
}

/** Parse a framed response body (tests and clients in this repo). */
export function* readFrames(body: Buffer): Generator<{ kind: 'data' | 'zero'; offset: bigint; length: number; data?: Buffer }, { size: bigint; total: bigint }> {
  if (body.length < 12 || !body.subarray(0, 4).equals(FRAME_MAGIC)) throw new RewindError(ErrorCodes.PROTOCOL, 'not a Rewind framed extents body (magic RWX1 missing)');
  const size = body.readBigUInt64BE(4);
  let pos = 12;
  for (;;) {
    if (pos + FRAME_HEADER > body.length) throw new RewindError(ErrorCodes.PROTOCOL, 'framed extents body ends without the end frame; the download was cut short');
    const kind = body.readUInt8(pos);
    const offset = body.readBigUInt64BE(pos + 1);
    const length = body.readUInt32BE(pos + 9);
    pos += FRAME_HEADER;
    if (kind === FRAME_END) return { size, total: offset };
    if (kind === FRAME_DATA) {
      yield { kind: 'data', offset, length, data: body.subarray(pos, pos + length) };
      pos += length;
    } else {
      yield { kind: 'zero', offset, length };
    }
  }
}
