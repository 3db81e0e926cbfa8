import { MAX_STRING_LENGTH } from '../constants.js';
import { sessionFor, type HandshakeState, type OptionHandler } from './state.js';

/**
 * NBD_OPT_EXPORT_NAME: the old way into transmission. It has no error reply, so an
 * unknown export (or a TLS-required server without TLS) means closing the connection.
 */
export const optExportName: OptionHandler = (ctx, st, _option, payload): HandshakeState => {
  if (ctx.tls === 'required' && !st.tlsActive) return { kind: 'Dead', reason: 'NBD_OPT_EXPORT_NAME before STARTTLS on a TLS-only server' };
  if (payload.length > MAX_STRING_LENGTH) return { kind: 'Dead', reason: 'export name longer than 4096 bytes' };
  const name = payload.toString('utf8');
  const backend = ctx.exports.get(name);
  if (!backend) return { kind: 'Dead', reason: `client asked for unknown export ${JSON.stringify(name)}` };
  const session = sessionFor(st, name, backend);
  const out = Buffer.alloc(st.noZeroes ? 10 : 134);
  out.writeBigUInt64BE(backend.size, 0);
  out.writeUInt16BE(session.transmissionFlags, 8);
  ctx.io.write(out);
  return { kind: 'Transmission', session };
};
