import { NBD_REP_ACK, NBD_REP_ERR_INVALID, NBD_REP_ERR_POLICY } from '../constants.js';
import { sendOptionError, sendOptionReply, type HandshakeState, type OptionHandler } from './state.js';

/**
 * NBD_OPT_STARTTLS: without TLS configured the answer is NBD_REP_ERR_POLICY. With TLS,
 * ACK in clear text and hand the socket to node:tls; everything after is encrypted.
 */
export const optStartTls: OptionHandler = async (ctx, st, option, payload): Promise<HandshakeState> => {
  if (payload.length !== 0) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'NBD_OPT_STARTTLS takes no payload');
    return st;
  }
  if (ctx.tls === 'off' || !ctx.io.startTls) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_POLICY, 'TLS is not configured on this server');
    return st;
  }
  if (st.tlsActive) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'TLS already active');
    return st;
  }
  sendOptionReply(ctx.io, option, NBD_REP_ACK);
  try {
    await ctx.io.startTls();
  } catch (err) {
    return { kind: 'Dead', reason: `TLS handshake failed: ${(err as Error).message}` };
  }
  // Negotiation state from before TLS must not carry over (spec: "STARTTLS").
  return { ...st, tlsActive: true, structuredReplies: false, metaExport: undefined, baseAllocation: false };
};
