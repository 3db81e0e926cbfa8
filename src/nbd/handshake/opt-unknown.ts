import { NBD_REP_ERR_UNSUP } from '../constants.js';
import { sendOptionError, type OptionHandler } from './state.js';

/** Any option we do not implement: the payload was already drained; say so. */
export const optUnknown: OptionHandler = (ctx, st, option) => {
  sendOptionError(ctx.io, option, NBD_REP_ERR_UNSUP, `option ${option} is not supported`);
  return st;
};
