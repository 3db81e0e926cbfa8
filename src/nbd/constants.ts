/**
 * NBD wire constants (NetworkBlockDevice proto.md). Section names in comments point at
 * the part of the spec each group comes from. Limits on anything the peer controls sit
 * next to the section that motivates them.
 */

// ---- "Newstyle negotiation" ----
export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
/** Magic that starts every option reply. */
export const OPT_REPLY_MAGIC = 0x3e889045565a9n;

/** Handshake flags (server → client, 16 bit). */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
/** Client flags (client → server, 32 bit). */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;
export const KNOWN_CLIENT_FLAGS = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;

// ---- "Option types" ----
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;

// ---- "Option reply types" ----
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
const REP_ERR = 0x80000000;
export const NBD_REP_ERR_UNSUP = REP_ERR + 1;
export const NBD_REP_ERR_POLICY = REP_ERR + 2;
export const NBD_REP_ERR_INVALID = REP_ERR + 3;
export const NBD_REP_ERR_PLATFORM = REP_ERR + 4;
export const NBD_REP_ERR_TLS_REQD = REP_ERR + 5;
export const NBD_REP_ERR_UNKNOWN = REP_ERR + 6;
export const NBD_REP_ERR_SHUTDOWN = REP_ERR + 7;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = REP_ERR + 8;
export const NBD_REP_ERR_TOO_BIG = REP_ERR + 9;

// ---- "NBD_REP_INFO" information types ----
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

// ---- "Transmission flags" ----
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

// ---- "Request message" / "Simple reply message" / "Structured reply chunk message" ----
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;
export const REQUEST_HEADER_SIZE = 28;
export const SIMPLE_REPLY_HEADER_SIZE = 16;
export const STRUCTURED_REPLY_HEADER_SIZE = 20;

// ---- "Request types" ----
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

// ---- "Command flags" ----
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

// ---- "Structured reply flags" / "Structured reply types" ----
export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

// ---- "Error values" ----
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

// ---- "Metadata querying": base:allocation ----
export const BASE_ALLOCATION = 'base:allocation';
/** The one context id we hand out; any nonzero value is legal. */
export const BASE_ALLOCATION_ID = 1;
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;

// ---- Limits on what the peer controls ----
/**
 * "Conventions": strings SHOULD be ≤ 256 bytes and MUST be ≤ 4096 bytes. Export names,
 * meta-context queries and error messages are held to this.
 */
export const MAX_STRING_LENGTH = 4096;
/**
 * "Option haggling": the spec sets no cap on an option's payload. Ours: at most 64 KiB is
 * read into memory (enough for a 4096-byte name plus many meta-context queries). Longer
 * payloads up to MAX_OPTION_DRAIN are discarded as they arrive (never buffered) and get
 * NBD_REP_ERR_TOO_BIG; beyond that the connection is closed after the error reply.
 */
export const MAX_OPTION_PAYLOAD = 64 * 1024;
export const MAX_OPTION_DRAIN = 16 * 1024 * 1024;
/** A peer that keeps haggling forever is cut off (each option costs a reply). */
export const MAX_OPTIONS_PER_HANDSHAKE = 1024;
/** Meta-context queries per SET/LIST option. */
export const MAX_META_QUERIES = 128;
/**
 * "Block size constraints": maximum payload of a READ/WRITE. 32 MiB is the value
 * qemu and nbdkit use. Larger WRITE payloads are read and discarded in bounded chunks
 * (no allocation) and answered NBD_EOVERFLOW so the connection stays framed.
 */
export const MAX_REQUEST_PAYLOAD = 32 * 1024 * 1024;
/** Advertised block sizes: byte-granular minimum, 4 KiB preferred. */
export const DEFAULT_MIN_BLOCK = 1;
export const DEFAULT_PREFERRED_BLOCK = 4096;
/**
 * Back-pressure: stop reading from a connection while this many request payload and
 * reply bytes are in flight (two max-sized writes plus slack).
 */
export const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;
/** Requests in flight per connection before the socket is paused. */
export const MAX_INFLIGHT_REQUESTS = 256;
/** Block status replies: cap on descriptors per reply chunk. */
export const MAX_BLOCK_STATUS_EXTENTS = 1024;
/**
 * A WRITE whose payload stops arriving for this long closes the connection (nothing can
 * be replied to a half-received write). Its memory is reserved (memory-budget.ts) while it
 * comes, so a client sending headers alone would otherwise hold that memory for good.
 * The Linux NBD client's own I/O timeout defaults to 30 s too.
 */
export const PAYLOAD_STALL_MS = 30_000;
/** Handshake must finish within this time (idle half-open connections cost a socket). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default connection cap per server. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
