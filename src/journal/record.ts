import { crc32c } from '@node-rs/crc32';

/**
 * One journal record. Layout (little-endian), specified in docs/journal-format.md:
 *
 *   off size field
 *     0    4 magic        0x444e5752 ("RWND" read as bytes R W N D)
 *     4    1 kind         1 write, 2 trim, 3 zero, 4 mark
 *     5    1 flags        bit0 FUA, bit1 NO_HOLE (zero), bit2 BASE (initial-copy data),
 *                         bit3 COALESCED (placeholder: data elided in shipping, see spool-coalesce.ts)
 *     6    2 reserved     0
 *     8    4 payloadLen   bytes following the header
 *    12    4 length       extent length in bytes (write: == payloadLen; mark: 0)
 *    16    8 seq          per-volume, strictly increasing, starts at 1
 *    24    8 time         hybrid-logical-clock ns since the epoch
 *    32    8 offset       byte offset on the volume (mark: 0)
 *    40    4 reserved     0
 *    44    4 crc          CRC32C over bytes 0..43 then the payload
 *    48    … payload      write: data; mark: UTF-8 name; trim/zero: none
 */
export const RECORD_MAGIC = 0x444e5752;
export const RECORD_HEADER_SIZE = 48;
/** Bigger than any NBD request we accept (32 MiB), so one write is one record. */
export const MAX_RECORD_PAYLOAD = 64 * 1024 * 1024;

export const RecordKind = { Write: 1, Trim: 2, Zero: 3, Mark: 4 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

export const RecordFlag = { Fua: 1, NoHole: 2, Base: 4, Coalesced: 8 } as const;

export interface JournalRecord {
  kind: RecordKind;
  flags: number;
  seq: bigint;
  time: bigint;
  offset: bigint;
  /** Extent length (bytes) for write/trim/zero; 0 for marks. */
  length: number;
  /** Write data, or the UTF-8 name of a mark; empty for trim/zero. */
  payload: Buffer;
  /**
   * The record's CRC32C when it is already known to match these exact fields and payload
   * (decodeRecord sets it after checking; the collector after verifying a wire entry), so
   * encodeHeader need not hash the payload again: each byte of a 1 MiB write was otherwise
   * hashed five times between the spool and the collector's disk. Build a new record
   * rather than editing one that carries it.
   */
  crc?: number;
}

export const EMPTY = Buffer.alloc(0);

export function kindName(kind: number): string {
  switch (kind) {
    case RecordKind.Write: return 'write';
    case RecordKind.Trim: return 'trim';
    case RecordKind.Zero: return 'zero';
    case RecordKind.Mark: return 'mark';
    default: return `unknown(${kind})`;
  }
}

/**
 * Encode the header for `rec`; the payload is not copied, so a writer can hand both
 * buffers to writev (a 1 MiB write would otherwise cost an extra memcpy).
 */
/** CRC32C of a record: header bytes 0..43, then the payload. */
export function recordCrc(header: Buffer, payload: Buffer): number {
  return crc32c(payload, crc32c(header.subarray(0, 44)));
}

/**
 * seq, time and offset go through one typed array: Buffer.writeBigUInt64LE splits each
 * bigint with two more bigint operations, three times per journaled write.
 */
const wide = new BigUint64Array(3);
const wideBytes = new Uint8Array(wide.buffer);
/** Typed arrays use the CPU's byte order; the format is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function encodeHeader(rec: JournalRecord): Buffer {
  const h = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
  h.writeUInt32LE(RECORD_MAGIC, 0);
  h[4] = rec.kind;
  h[5] = rec.flags;
  h[6] = 0;
  h[7] = 0;
  h.writeUInt32LE(rec.payload.length, 8);
  h.writeUInt32LE(rec.length, 12);
  if (LITTLE_ENDIAN) {
    wide[0] = rec.seq;
    wide[1] = rec.time;
    wide[2] = rec.offset;
    h.set(wideBytes, 16);
  } else {
    h.writeBigUInt64LE(rec.seq, 16);
    h.writeBigUInt64LE(rec.time, 24);
    h.writeBigUInt64LE(rec.offset, 32);
  }
  h.writeUInt32LE(0, 40);
  const crc = rec.crc ?? recordCrc(h, rec.payload);
  h.writeUInt32LE(crc, 44);
  return h;
}

export function encodeRecord(rec: JournalRecord): Buffer {
  return Buffer.concat([encodeHeader(rec), rec.payload]);
}

export type DecodeResult =
  | { ok: true; record: JournalRecord; size: number }
  /** Fewer bytes than the header or its declared payload: a torn tail if at end of file. */
  | { ok: false; reason: 'short'; need: number }
  | { ok: false; reason: 'bad-magic' | 'bad-crc' | 'bad-header'; detail: string };

/** Decode one record at `pos`. Never throws; the caller decides torn tail vs corruption. */
export function decodeRecord(buf: Buffer, pos = 0): DecodeResult {
  if (buf.length - pos < RECORD_HEADER_SIZE) return { ok: false, reason: 'short', need: RECORD_HEADER_SIZE };
  const magic = buf.readUInt32LE(pos);
  if (magic !== RECORD_MAGIC) return { ok: false, reason: 'bad-magic', detail: `magic 0x${magic.toString(16)}` };
  const kind = buf.readUInt8(pos + 4);
  const payloadLen = buf.readUInt32LE(pos + 8);
  if (kind < 1 || kind > 4 || payloadLen > MAX_RECORD_PAYLOAD) {
    return { ok: false, reason: 'bad-header', detail: `kind ${kind}, payload ${payloadLen}` };
  }
  const total = RECORD_HEADER_SIZE + payloadLen;
  if (buf.length - pos < total) return { ok: false, reason: 'short', need: total };
  const payload = buf.subarray(pos + RECORD_HEADER_SIZE, pos + total);
  const want = buf.readUInt32LE(pos + 44);
  const got = recordCrc(buf.subarray(pos, pos + RECORD_HEADER_SIZE), payload);
  if (want !== got) return { ok: false, reason: 'bad-crc', detail: `stored 0x${want.toString(16)}, computed 0x${got.toString(16)}` };
  return {
    ok: true,
    size: total,
    record: {
      kind: kind as RecordKind,
      flags: buf.readUInt8(pos + 5),
      length: buf.readUInt32LE(pos + 12),
      seq: buf.readBigUInt64LE(pos + 16),
      time: buf.readBigUInt64LE(pos + 24),
      offset: buf.readBigUInt64LE(pos + 32),
      payload,
      crc: want,
    },
  };
}
