import { NBD_CMD_WRITE, NBD_REQUEST_MAGIC, REQUEST_HEADER_SIZE } from './constants.js';

/** One transmission request ("Request message": magic, flags, type, cookie, offset, length). */
export interface NbdRequest {
  flags: number;
  type: number;
  /** The 8-byte cookie, echoed verbatim in every reply to this request. */
  handle: Buffer;
  offset: bigint;
  length: number;
}

export type ParsedHeader = { ok: true; req: NbdRequest } | { ok: false; reason: string };

/** Parse a 28-byte request header. A bad magic is a protocol violation (caller closes). */
export function parseRequestHeader(h: Buffer): ParsedHeader {
  if (h.length !== REQUEST_HEADER_SIZE) return { ok: false, reason: `request header of ${h.length} bytes` };
  const magic = h.readUInt32BE(0);
  if (magic !== NBD_REQUEST_MAGIC) return { ok: false, reason: `bad request magic 0x${magic.toString(16)}` };
  return {
    ok: true,
    req: {
      flags: h.readUInt16BE(4),
      type: h.readUInt16BE(6),
      // Copy the cookie: the header may be a slice of a large socket chunk we do not
      // want to keep alive until the reply is sent.
      handle: Buffer.from(h.subarray(8, 16)),
      offset: h.readBigUInt64BE(16),
      length: h.readUInt32BE(24),
    },
  };
}

/** Only WRITE carries a payload of `length` bytes (no extended headers here). */
export function hasPayload(type: number): boolean {
  return type === NBD_CMD_WRITE;
}
