import {
  BASE_ALLOCATION, BASE_ALLOCATION_ID, MAX_META_QUERIES, MAX_STRING_LENGTH, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK,
  NBD_REP_ERR_INVALID, NBD_REP_ERR_TLS_REQD, NBD_REP_ERR_TOO_BIG, NBD_REP_ERR_UNKNOWN, NBD_REP_META_CONTEXT,
} from '../constants.js';
import { sendOptionError, sendOptionReply, type HandshakeState, type OptionHandler } from './state.js';

export interface MetaQuery {
  exportName: string;
  queries: string[];
}

/** Parse "String export, 32 bit count, count × String query"; a string on error. */
export function parseMetaQuery(payload: Buffer): MetaQuery | string {
  if (payload.length < 8) return 'payload too short';
  const nameLen = payload.readUInt32BE(0);
  if (nameLen > MAX_STRING_LENGTH || 8 + nameLen > payload.length) return 'bad export name length';
  const exportName = payload.toString('utf8', 4, 4 + nameLen);
  let pos = 4 + nameLen;
  const count = payload.readUInt32BE(pos);
  pos += 4;
  if (count > MAX_META_QUERIES) return `more than ${MAX_META_QUERIES} queries`;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (pos + 4 > payload.length) return 'truncated query list';
    const len = payload.readUInt32BE(pos);
    pos += 4;
    if (len > MAX_STRING_LENGTH || pos + len > payload.length) return 'bad query length';
    queries.push(payload.toString('utf8', pos, pos + len));
    pos += len;
  }
  if (pos !== payload.length) return 'trailing bytes after the query list';
  return { exportName, queries };
}

function contextReply(id: number, name: string): Buffer {
  const b = Buffer.from(name, 'utf8');
  const out = Buffer.allocUnsafe(4 + b.length);
  out.writeUInt32BE(id, 0);
  b.copy(out, 4);
  return out;
}

/** Does `query` match base:allocation? LIST accepts the namespace "base:" as a wildcard. */
function matches(query: string, list: boolean): boolean {
  return query === BASE_ALLOCATION || (list && query === 'base:');
}

/**
 * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT with the one context we serve,
 * base:allocation. SET needs structured replies first; it replaces any earlier
 * selection, and the selection only applies to the export it names.
 */
export const optMetaContext: OptionHandler = (ctx, st, option, payload): HandshakeState => {
  const set = option === NBD_OPT_SET_META_CONTEXT;
  if (ctx.tls === 'required' && !st.tlsActive) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_TLS_REQD, 'this server requires NBD_OPT_STARTTLS first');
    return st;
  }
  if (set && !st.structuredReplies) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY before NBD_OPT_SET_META_CONTEXT');
    return st;
  }
  const q = parseMetaQuery(payload);
  if (typeof q === 'string') {
    sendOptionError(ctx.io, option, q.startsWith('more than') ? NBD_REP_ERR_TOO_BIG : NBD_REP_ERR_INVALID, `meta context request: ${q}`);
    return st;
  }
  if (!ctx.exports.get(q.exportName)) {
    sendOptionError(ctx.io, option, NBD_REP_ERR_UNKNOWN, `no export named ${JSON.stringify(q.exportName)}`);
    return st;
  }
  const selected = set ? q.queries.some((s) => matches(s, false)) : q.queries.length === 0 || q.queries.some((s) => matches(s, true));
  if (selected) sendOptionReply(ctx.io, option, NBD_REP_META_CONTEXT, contextReply(set ? BASE_ALLOCATION_ID : 0, BASE_ALLOCATION));
  sendOptionReply(ctx.io, option, NBD_REP_ACK);
  if (!set) return st;
  return { ...st, metaExport: q.exportName, baseAllocation: selected };
};
