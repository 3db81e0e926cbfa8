import { NBD_REP_ACK } from '../constants.js';
import { sendOptionReply, type OptionHandler } from './state.js';

/** NBD_OPT_ABORT: acknowledge (the spec says SHOULD) and close cleanly. */
export const optAbort: OptionHandler = (ctx, _st, option) => {
  sendOptionReply(ctx.io, option, NBD_REP_ACK);
  return { kind: 'Closed', reason: 'client sent NBD_OPT_ABORT' };
};
