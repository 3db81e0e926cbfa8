import type { Backend, Extent } from './backend.js';
import { ErrorCodes, isRewindError } from '../core/errors.js';
import {
  MAX_BLOCK_STATUS_EXTENTS, MAX_REQUEST_PAYLOAD, NBD_CMD_BLOCK_STATUS, NBD_CMD_CACHE, NBD_CMD_DISC, NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_FLAG_FUA, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_FLUSH, NBD_CMD_READ,
  NBD_CMD_TRIM, NBD_CMD_WRITE, NBD_CMD_WRITE_ZEROES, NBD_EINVAL, NBD_EIO, NBD_ENOSPC, NBD_ENOTSUP, NBD_EOVERFLOW,
  NBD_EPERM, NBD_ESHUTDOWN,
} from './constants.js';

/** A refusal: NBD errno plus a message for structured error chunks and logs. */
export interface Refusal {
  errno: number;
  message: string;
}

const ALLOWED_FLAGS: Record<number, number> = {
  [NBD_CMD_READ]: NBD_CMD_FLAG_DF,
  [NBD_CMD_WRITE]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_DISC]: 0,
  [NBD_CMD_FLUSH]: 0,
  [NBD_CMD_TRIM]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_CACHE]: 0,
  [NBD_CMD_WRITE_ZEROES]: NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO,
  [NBD_CMD_BLOCK_STATUS]: NBD_CMD_FLAG_REQ_ONE,
};

/** Map anything a backend throws to the NBD errno the client sees. */
export function errnoOf(err: unknown): number {
  if (isRewindError(err)) {
    switch (err.code) {
      case ErrorCodes.NO_SPACE: return NBD_ENOSPC;
      case ErrorCodes.READ_ONLY:
      case ErrorCodes.PERMISSION_DENIED: return NBD_EPERM;
      case ErrorCodes.INVALID_ARGUMENT:
      case ErrorCodes.OUT_OF_RANGE: return NBD_EINVAL;
      case ErrorCodes.UNSUPPORTED: return NBD_ENOTSUP;
      case ErrorCodes.CLOSED: return NBD_ESHUTDOWN;
      default: return NBD_EIO;
    }
  }
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOSPC':
    case 'EDQUOT': return NBD_ENOSPC;
    case 'EROFS':
    case 'EPERM':
    case 'EACCES': return NBD_EPERM;
    case 'EINVAL': return NBD_EINVAL;
    default: return NBD_EIO;
  }
}

/**
 * The one checked wrapper the server calls (nbdkit's backend.c idea): every request is
 * validated here for flags, capability, range and alignment before the backend sees it,
 * and every backend failure comes back as an NBD errno. The backend can then trust its
 * arguments.
 */
export class CheckedBackend {
  private readonly min: bigint;

  constructor(readonly backend: Backend, private readonly structuredReplies: boolean, private readonly baseAllocation: boolean) {
    this.min = BigInt(Math.max(1, backend.blockSizes.minimum));
  }

  /** undefined when the request may proceed. */
  validate(type: number, flags: number, offset: bigint, length: number): Refusal | undefined {
    const allowed = ALLOWED_FLAGS[type];
    if (allowed === undefined) return { errno: NBD_EINVAL, message: `unknown command ${type}` };
    if ((flags & ~allowed) !== 0) return { errno: NBD_EINVAL, message: `flags 0x${flags.toString(16)} not valid for command ${type}` };
    const caps = this.backend.capabilities;
    const size = this.backend.size;
    switch (type) {
      case NBD_CMD_DISC:
        return undefined;
      case NBD_CMD_FLUSH:
        if (!caps.flush) return { errno: NBD_EINVAL, message: 'flush not supported by this export' };
        return undefined;
      case NBD_CMD_READ:
      case NBD_CMD_WRITE:
        if (length > MAX_REQUEST_PAYLOAD) return { errno: NBD_EOVERFLOW, message: `length ${length} exceeds the ${MAX_REQUEST_PAYLOAD}-byte maximum` };
        if ((flags & NBD_CMD_FLAG_DF) && !this.structuredReplies) return { errno: NBD_EINVAL, message: 'DF needs structured replies' };
        break;
      case NBD_CMD_BLOCK_STATUS:
        if (!this.baseAllocation) return { errno: NBD_EINVAL, message: 'no meta context negotiated; use NBD_OPT_SET_META_CONTEXT base:allocation' };
        break;
      case NBD_CMD_CACHE:
        if (!caps.cache) return { errno: NBD_EINVAL, message: 'cache not supported by this export' };
        break;
      default:
        break;
    }
    const mutates = type === NBD_CMD_WRITE || type === NBD_CMD_TRIM || type === NBD_CMD_WRITE_ZEROES;
    if (mutates && caps.readOnly) return { errno: NBD_EPERM, message: 'export is read-only' };
    if (type === NBD_CMD_TRIM && !caps.trim) return { errno: NBD_EINVAL, message: 'trim not supported by this export' };
    if (type === NBD_CMD_WRITE_ZEROES) {
      if (!caps.zero) return { errno: NBD_EINVAL, message: 'write zeroes not supported by this export' };
      // We cannot promise zeroing faster than writing, so FAST_ZERO is refused as the
      // spec asks: the client falls back to its own strategy.
      if (flags & NBD_CMD_FLAG_FAST_ZERO) return { errno: NBD_ENOTSUP, message: 'fast zero not available' };
    }
    if ((flags & NBD_CMD_FLAG_FUA) && !caps.fua) return { errno: NBD_EINVAL, message: 'FUA not supported by this export' };
    if (length === 0) return { errno: NBD_EINVAL, message: 'zero-length request' };
    if (offset > size || BigInt(length) > size - offset) {
      return { errno: mutates ? NBD_ENOSPC : NBD_EINVAL, message: `range ${offset}+${length} is beyond the export size ${size}` };
    }
    if (this.min > 1n && (offset % this.min !== 0n || BigInt(length) % this.min !== 0n)) {
      return { errno: NBD_EINVAL, message: `request not aligned to the ${this.min}-byte minimum block size` };
    }
    return undefined;
  }

  read(buf: Buffer, offset: bigint): Promise<number> {
    return this.backend.pread(buf, offset).then(ok, errnoOf);
  }

  write(buf: Buffer, offset: bigint, fua: boolean): Promise<number> {
    return this.backend.pwrite(buf, offset, { fua }).then(ok, errnoOf);
  }

  /** Gather write when the backend has pwritev; otherwise one copy and pwrite. */
  writev(bufs: readonly Buffer[], offset: bigint, fua: boolean): Promise<number> {
    const b = this.backend;
    if (b.pwritev) return b.pwritev(bufs, offset, { fua }).then(ok, errnoOf);
    return this.write(Buffer.concat(bufs), offset, fua);
  }

  flush(): Promise<number> {
    return this.backend.flush().then(ok, errnoOf);
  }

  trim(offset: bigint, length: number, fua: boolean): Promise<number> {
    return this.backend.trim(offset, length, { fua }).then(ok, errnoOf);
  }

  zero(offset: bigint, length: number, fua: boolean, noHole: boolean): Promise<number> {
    return this.backend.zero(offset, length, { fua, noHole }).then(ok, errnoOf);
  }

  cache(offset: bigint, length: number): Promise<number> {
    return this.backend.cache(offset, length).then(ok, errnoOf);
  }

  /**
   * Extents for [offset, offset+length): clamped to the request, contiguous from
   * `offset`, at least one, at most MAX_BLOCK_STATUS_EXTENTS (or one with REQ_ONE).
   */
  async blockStatus(offset: bigint, length: number, reqOne: boolean): Promise<Extent[] | number> {
    let raw: Extent[];
    try {
      raw = await this.backend.blockStatus(offset, length);
    } catch (err) {
      return errnoOf(err);
    }
    const end = offset + BigInt(length);
    const out: Extent[] = [];
    let at = offset;
    const limit = reqOne ? 1 : MAX_BLOCK_STATUS_EXTENTS;
    for (const e of raw) {
      if (e.offset !== at || e.length <= 0n) break;
      const len = e.offset + e.length > end ? end - e.offset : e.length;
      const prev = out[out.length - 1];
      if (prev && prev.flags === e.flags) prev.length += len;
      else {
        if (out.length === limit) break;
        out.push({ offset: at, length: len, flags: e.flags & 3 });
      }
      at += len;
      if (at >= end) break;
    }
    if (out.length === 0) return NBD_EIO;
    return out;
  }
}

function ok(): number {
  return 0;
}
