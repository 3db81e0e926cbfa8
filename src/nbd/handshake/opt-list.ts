import { NBD_REP_ACK, NBD_REP_ERR_INVALID, NBD_REP_SERVER } from '../constants.js';
import { sendOptionError, sendOptionReply, type OptionHandler } from './state.js';

/** NBD_OPT_LIST: one NBD_REP_SERVER per export (name length, name, description), then ACK. */
export const optList: OptionHandler = (ctx, st, option, payload) => {
  if (payload.length !== 0) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no payload');
    return st;
  }
  for (const e of ctx.exports.list()) {
    const name = Buffer.from(e.name, 'utf8');
    // Anything after the name is a human-readable description ("NBD_REP_SERVER").
    const desc = Buffer.from(e.description ?? '', 'utf8');
    const data = Buffer.allocUnsafe(4 + name.length + desc.length);
    data.writeUInt32BE(name.length, 0);
    name.copy(data, 4);
    desc.copy(data, 4 + name.length);
    sendOptionReply(ctx.io, option, NBD_REP_SERVER, data);
  }
  sendOptionReply(ctx.io, option, NBD_REP_ACK);
  return st;
};
