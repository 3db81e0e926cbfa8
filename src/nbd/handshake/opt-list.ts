import { NBD_REP_ACK, NBD_REP_ERR_INVALID, NBD_REP_SERVER } from '../constants.js';
import { sendOptionError, sendOptionReply, type OptionHandler } from './state.js';

/** NBD_OPT_LIST: one NBD_REP_SERVER per export (name length, name), then ACK. */
export const optList: OptionHandler = (ctx, st, option, payload) => {
  if (payload.length !== 0) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no payload');
    return st;
  }
  for (const e of ctx.exports.list()) {
    const name = Buffer.from(e.name, 'utf8');
    const data = Buffer.allocUnsafe(4 + name.length);
    data.writeUInt32BE(name.length, 0);
    name.copy(data, 4);
    sendOptionReply(ctx.io, option, NBD_REP_SERVER, data);
  }
  sendOptionReply(ctx.io, option, NBD_REP_ACK);
  return st;
};
