import {
  MAX_REQUEST_PAYLOAD, MAX_STRING_LENGTH, NBD_INFO_BLOCK_SIZE, NBD_INFO_DESCRIPTION, NBD_INFO_EXPORT, NBD_INFO_NAME,
  NBD_OPT_GO, NBD_REP_ACK, NBD_REP_ERR_INVALID, NBD_REP_ERR_TLS_REQD, NBD_REP_ERR_UNKNOWN, NBD_REP_INFO,
} from '../constants.js';
import { sendOptionError, sendOptionReply, sessionFor, type HandshakeState, type OptionHandler } from './state.js';

export interface InfoRequest {
  name: string;
  infos: number[];
}

/** Parse "String name, 16 bit count, count × 16 bit info types"; undefined if malformed. */
export function parseInfoRequest(payload: Buffer): InfoRequest | undefined {
  if (payload.length < 6) return undefined;
  const nameLen = payload.readUInt32BE(0);
  if (nameLen > MAX_STRING_LENGTH || 4 + nameLen + 2 > payload.length) return undefined;
  const count = payload.readUInt16BE(4 + nameLen);
  if (payload.length !== 4 + nameLen + 2 + 2 * count) return undefined;
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(payload.readUInt16BE(4 + nameLen + 2 + 2 * i));
  return { name: payload.toString('utf8', 4, 4 + nameLen), infos };
}

function infoString(type: number, s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(type, 0);
  b.copy(out, 2);
  return out;
}

/**
 * NBD_OPT_INFO and NBD_OPT_GO share a body: NBD_INFO_EXPORT always, NBD_INFO_BLOCK_SIZE
 * always (our minimum is 1 so a client that ignores it is still correct), NAME and
 * DESCRIPTION when asked. GO then enters transmission; INFO stays in negotiation.
 */
export const optInfoGo: OptionHandler = (ctx, st, option, payload): HandshakeState => {
  if (ctx.tls === 'required' && !st.tlsActive) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_TLS_REQD, 'this server requires NBD_OPT_STARTTLS first');
    return st;
  }
  const req = parseInfoRequest(payload);
  if (!req) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'malformed NBD_OPT_INFO/GO payload');
    return st;
  }
  const backend = ctx.exports.get(req.name);
  if (!backend) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_UNKNOWN, `no export named ${JSON.stringify(req.name)}`);
    return st;
  }
  const session = sessionFor(st, req.name, backend);
  const exp = Buffer.allocUnsafe(12);
  exp.writeUInt16BE(NBD_INFO_EXPORT, 0);
  exp.writeBigUInt64BE(backend.size, 2);
  exp.writeUInt16BE(session.transmissionFlags, 10);
  sendOptionReply(ctx.io, option, NBD_REP_INFO, exp);

  const bs = backend.blockSizes;
  const blk = Buffer.allocUnsafe(14);
  blk.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  blk.writeUInt32BE(bs.minimum, 2);
  blk.writeUInt32BE(bs.preferred, 6);
  blk.writeUInt32BE(Math.min(bs.maximum, MAX_REQUEST_PAYLOAD), 10);
  sendOptionReply(ctx.io, option, NBD_REP_INFO, blk);

  if (req.infos.includes(NBD_INFO_NAME)) sendOptionReply(ctx.io, option, NBD_REP_INFO, infoString(NBD_INFO_NAME, req.name));
  const description = ctx.exports.describe(req.name)?.description;
  if (req.infos.includes(NBD_INFO_DESCRIPTION) && description !== undefined) {
    sendOptionReply(ctx.io, option, NBD_REP_INFO, infoString(NBD_INFO_DESCRIPTION, description));
  }
  sendOptionReply(ctx.io, option, NBD_REP_ACK);
  if (option === NBD_OPT_GO) return { kind: 'Transmission', session };
  return st;
};
