import type { Backend } from '../backend.js';
import type { ExportResolver } from '../export-registry.js';
import type { Logger } from '../../core/logger.js';
import {
  NBD_FLAG_CAN_MULTI_CONN, NBD_FLAG_HAS_FLAGS, NBD_FLAG_READ_ONLY, NBD_FLAG_SEND_CACHE, NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FAST_ZERO, NBD_FLAG_SEND_FLUSH, NBD_FLAG_SEND_FUA, NBD_FLAG_SEND_TRIM, NBD_FLAG_SEND_WRITE_ZEROES,
  OPT_REPLY_MAGIC,
} from '../constants.js';

/**
 * The handshake as an explicit state machine (libnbd style). Every option handler takes
 * the Options state and returns the next state; Transmission, Closed and Dead are
 * terminal. Dead means a protocol violation or an unrecoverable condition: the
 * connection is dropped without further replies.
 */
export type TlsMode = 'off' | 'optional' | 'required';

export interface OptionsState {
  kind: 'Options';
  noZeroes: boolean;
  structuredReplies: boolean;
  /** Export name the meta-context selection was made for, and whether base:allocation is in it. */
  metaExport: string | undefined;
  baseAllocation: boolean;
  tlsActive: boolean;
  optionCount: number;
}

export interface NegotiatedSession {
  exportName: string;
  backend: Backend;
  structuredReplies: boolean;
  /** base:allocation was selected with SET_META_CONTEXT for this export. */
  baseAllocation: boolean;
  transmissionFlags: number;
}

export type HandshakeState =
  | { kind: 'AwaitClientFlags' }
  | OptionsState
  | { kind: 'Transmission'; session: NegotiatedSession }
  | { kind: 'Closed'; reason: string }
  | { kind: 'Dead'; reason: string };

export type TerminalState = Extract<HandshakeState, { kind: 'Transmission' | 'Closed' | 'Dead' }>;

export interface HandshakeIo {
  read(n: number): Promise<Buffer>;
  skip(n: number): Promise<void>;
  write(buf: Buffer): void;
  /** Upgrade the transport to TLS after NBD_OPT_STARTTLS was acknowledged. */
  startTls?(): Promise<void>;
}

export interface HandshakeContext {
  io: HandshakeIo;
  exports: ExportResolver;
  tls: TlsMode;
  logger?: Logger;
}

export type OptionHandler = (ctx: HandshakeContext, st: OptionsState, option: number, payload: Buffer) => Promise<HandshakeState> | HandshakeState;

/** Option reply: magic, option, reply type, length, data ("Option reply" section). */
export function sendOptionReply(io: HandshakeIo, option: number, type: number, data?: Buffer): void {
  const len = data?.length ?? 0;
  const hdr = Buffer.allocUnsafe(20);
  hdr.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
  hdr.writeUInt32BE(option, 8);
  hdr.writeUInt32BE(type >>> 0, 12);
  hdr.writeUInt32BE(len, 16);
  io.write(len ? Buffer.concat([hdr, data!]) : hdr);
}

/** Error replies may carry a human-readable message. */
export function sendOptionError(io: HandshakeIo, option: number, type: number, message: string): void {
  sendOptionReply(io, option, type, Buffer.from(message, 'utf8'));
}

/** Transmission flags derived from what the backend can do ("Transmission flags"). */
export function transmissionFlagsFor(backend: Backend): number {
  const c = backend.capabilities;
  let f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_DF;
  if (c.readOnly) f |= NBD_FLAG_READ_ONLY;
  if (c.flush) f |= NBD_FLAG_SEND_FLUSH;
  if (c.fua) f |= NBD_FLAG_SEND_FUA;
  if (c.trim && !c.readOnly) f |= NBD_FLAG_SEND_TRIM;
  if (c.zero && !c.readOnly) f |= NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
  if (c.multiConn) f |= NBD_FLAG_CAN_MULTI_CONN;
  if (c.cache) f |= NBD_FLAG_SEND_CACHE;
  return f;
}

export function sessionFor(st: OptionsState, name: string, backend: Backend): NegotiatedSession {
  return {
    exportName: name,
    backend,
    structuredReplies: st.structuredReplies,
    baseAllocation: st.structuredReplies && st.baseAllocation && st.metaExport === name,
    transmissionFlags: transmissionFlagsFor(backend),
  };
}
