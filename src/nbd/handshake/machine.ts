import {
  IHAVEOPT, KNOWN_CLIENT_FLAGS, MAX_OPTIONS_PER_HANDSHAKE, MAX_OPTION_DRAIN, MAX_OPTION_PAYLOAD, NBDMAGIC,
  NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES, NBD_FLAG_FIXED_NEWSTYLE, NBD_FLAG_NO_ZEROES, NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST, NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_TLS_REQD, NBD_REP_ERR_TOO_BIG,
} from '../constants.js';
import { optAbort } from './opt-abort.js';
import { optExportName } from './opt-export-name.js';
import { optInfoGo } from './opt-info-go.js';
import { optList } from './opt-list.js';
import { optMetaContext } from './opt-meta-context.js';
import { optStartTls } from './opt-starttls.js';
import { optStructuredReply } from './opt-structured-reply.js';
import { optUnknown } from './opt-unknown.js';
import { sendOptionError, type HandshakeContext, type HandshakeState, type OptionHandler, type OptionsState, type TerminalState } from './state.js';

const HANDLERS: ReadonlyMap<number, OptionHandler> = new Map([
  [NBD_OPT_EXPORT_NAME, optExportName],
  [NBD_OPT_ABORT, optAbort],
  [NBD_OPT_LIST, optList],
  [NBD_OPT_STARTTLS, optStartTls],
  [NBD_OPT_INFO, optInfoGo],
  [NBD_OPT_GO, optInfoGo],
  [NBD_OPT_STRUCTURED_REPLY, optStructuredReply],
  [NBD_OPT_LIST_META_CONTEXT, optMetaContext],
  [NBD_OPT_SET_META_CONTEXT, optMetaContext],
]);

/** Options a TLS-required server still answers before STARTTLS. */
const ALLOWED_BEFORE_TLS = new Set([NBD_OPT_STARTTLS, NBD_OPT_ABORT, NBD_OPT_EXPORT_NAME, NBD_OPT_INFO, NBD_OPT_GO, NBD_OPT_SET_META_CONTEXT, NBD_OPT_LIST_META_CONTEXT]);

/** Server greeting of fixed newstyle negotiation. */
export function greeting(): Buffer {
  const g = Buffer.allocUnsafe(18);
  g.writeBigUInt64BE(NBDMAGIC, 0);
  g.writeBigUInt64BE(IHAVEOPT, 8);
  g.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
  return g;
}

/** AwaitClientFlags → Options | Dead. */
export function onClientFlags(flags: number): HandshakeState {
  if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) return { kind: 'Dead', reason: `client flags 0x${flags.toString(16)} include unknown bits` };
  if ((flags & NBD_FLAG_C_FIXED_NEWSTYLE) === 0) return { kind: 'Dead', reason: 'client does not speak fixed newstyle negotiation' };
  return {
    kind: 'Options',
    noZeroes: (flags & NBD_FLAG_C_NO_ZEROES) !== 0,
    structuredReplies: false,
    metaExport: undefined,
    baseAllocation: false,
    tlsActive: false,
    optionCount: 0,
  };
}

/** One option: header already read; reads or drains the payload and runs its handler. */
export async function onOption(ctx: HandshakeContext, st: OptionsState, option: number, length: number): Promise<HandshakeState> {
  const next: OptionsState = { ...st, optionCount: st.optionCount + 1 };
  if (next.optionCount > MAX_OPTIONS_PER_HANDSHAKE) return { kind: 'Dead', reason: `more than ${MAX_OPTIONS_PER_HANDSHAKE} options` };
  if (length > MAX_OPTION_PAYLOAD) {
    // EXPORT_NAME has no error reply; anything else gets TOO_BIG and, if the payload is
    // too large even to discard, a close.
    if (option === NBD_OPT_EXPORT_NAME) return { kind: 'Dead', reason: `NBD_OPT_EXPORT_NAME of ${length} bytes` };
    if (length > MAX_OPTION_DRAIN) {
      sendOptionError(ctx.io, option, NBD_REP_ERR_TOO_BIG, `option payload of ${length} bytes is over the ${MAX_OPTION_DRAIN}-byte limit; closing`);
      return { kind: 'Dead', reason: `option payload of ${length} bytes` };
    }
    await ctx.io.skip(length);
    sendOptionError(ctx.io, option, NBD_REP_ERR_TOO_BIG, `option payload of ${length} bytes is over the ${MAX_OPTION_PAYLOAD}-byte limit`);
    return next;
  }
  const payload = await ctx.io.read(length);
  if (ctx.tls === 'required' && !next.tlsActive && !ALLOWED_BEFORE_TLS.has(option)) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_TLS_REQD, 'this server requires NBD_OPT_STARTTLS first');
    return next;
  }
  const handler = HANDLERS.get(option) ?? optUnknown;
  return handler(ctx, next, option, payload);
}

/**
 * Drive the handshake to a terminal state. Read failures (peer gone, timeout) surface
 * as Closed so the caller has one place to clean up.
 */
export async function runHandshake(ctx: HandshakeContext): Promise<TerminalState> {
  let st: HandshakeState = { kind: 'AwaitClientFlags' };
  try {
    ctx.io.write(greeting());
    for (;;) {
      switch (st.kind) {
        case 'AwaitClientFlags': {
          const b = await ctx.io.read(4);
          st = onClientFlags(b.readUInt32BE(0));
          break;
        }
        case 'Options': {
          const h = await ctx.io.read(16);
          if (h.readBigUInt64BE(0) !== IHAVEOPT) {
            st = { kind: 'Dead', reason: 'option without IHAVEOPT magic' };
            break;
          }
          st = await onOption(ctx, st, h.readUInt32BE(8), h.readUInt32BE(12));
          break;
        }
        case 'Transmission':
        case 'Closed':
        case 'Dead':
          return st;
      }
    }
  } catch (err) {
    return { kind: 'Closed', reason: (err as Error).message };
  }
}
