import type { Extent } from './backend.js';
import {
  NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, NBD_REPLY_TYPE_ERROR, NBD_REPLY_TYPE_NONE, NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_SIMPLE_REPLY_MAGIC, NBD_STRUCTURED_REPLY_MAGIC, SIMPLE_REPLY_HEADER_SIZE, STRUCTURED_REPLY_HEADER_SIZE,
} from './constants.js';

/** Encoders for "Simple reply message" and "Structured reply chunk message". */
export function writeSimpleHeader(out: Buffer, handle: Buffer, error: number): void {
  out.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  out.writeUInt32BE(error >>> 0, 4);
  handle.copy(out, 8);
}

export function simpleReply(handle: Buffer, error: number): Buffer {
  const out = Buffer.allocUnsafe(SIMPLE_REPLY_HEADER_SIZE);
  writeSimpleHeader(out, handle, error);
  return out;
}

export function writeStructuredHeader(out: Buffer, at: number, flags: number, type: number, handle: Buffer, length: number): void {
  out.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, at);
  out.writeUInt16BE(flags, at + 4);
  out.writeUInt16BE(type, at + 6);
  handle.copy(out, at + 8);
  out.writeUInt32BE(length, at + 16);
}

/** Bytes in front of the data of a one-chunk structured READ reply (header + offset). */
export const STRUCTURED_READ_PREFIX = STRUCTURED_REPLY_HEADER_SIZE + 8;

export function writeOffsetDataPrefix(out: Buffer, handle: Buffer, offset: bigint, dataLength: number): void {
  writeStructuredHeader(out, 0, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, handle, 8 + dataLength);
  out.writeBigUInt64BE(offset, STRUCTURED_REPLY_HEADER_SIZE);
}

/** Final chunk with no payload (success of a non-READ command under structured replies). */
export function structuredDone(handle: Buffer): Buffer {
  const out = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE);
  writeStructuredHeader(out, 0, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, handle, 0);
  return out;
}

/** NBD_REPLY_TYPE_ERROR: errno, message length (16 bit), message. */
export function structuredError(handle: Buffer, error: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 200), 'utf8');
  const out = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE + 6 + msg.length);
  writeStructuredHeader(out, 0, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, handle, 6 + msg.length);
  out.writeUInt32BE(error >>> 0, STRUCTURED_REPLY_HEADER_SIZE);
  out.writeUInt16BE(msg.length, STRUCTURED_REPLY_HEADER_SIZE + 4);
  msg.copy(out, STRUCTURED_REPLY_HEADER_SIZE + 6);
  return out;
}

/** NBD_REPLY_TYPE_BLOCK_STATUS: context id then (length, flags) per extent. */
export function blockStatusReply(handle: Buffer, contextId: number, extents: readonly Extent[]): Buffer {
  const len = 4 + 8 * extents.length;
  const out = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE + len);
  writeStructuredHeader(out, 0, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, handle, len);
  out.writeUInt32BE(contextId, STRUCTURED_REPLY_HEADER_SIZE);
  let at = STRUCTURED_REPLY_HEADER_SIZE + 4;
  for (const e of extents) {
    out.writeUInt32BE(Number(e.length), at);
    out.writeUInt32BE(e.flags, at + 4);
    at += 8;
  }
  return out;
}
