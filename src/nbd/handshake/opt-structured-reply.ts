import { NBD_REP_ACK, NBD_REP_ERR_INVALID } from '../constants.js';
import { sendOptionError, sendOptionReply, type OptionHandler } from './state.js';

/** NBD_OPT_STRUCTURED_REPLY: no payload; enabling twice is refused as invalid. */
export const optStructuredReply: OptionHandler = (ctx, st, option, payload) => {
  if (payload.length !== 0) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no payload');
    return st;
  }
  if (st.structuredReplies) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'structured replies already negotiated');
    return st;
  }
  sendOptionReply(ctx.io, option, NBD_REP_ACK);
  return { ...st, structuredReplies: true };
};
