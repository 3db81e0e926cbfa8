/**
 * One error class, one stable code per failure (undici style). Messages say what to do.
 * Codes are part of the public surface: CLI exit output, HTTP error bodies and gRPC
 * status details carry them, so never rename one.
 */
export const ErrorCodes = {
  INVALID_ARGUMENT: 'REWIND_ERR_INVALID_ARGUMENT',
  OUT_OF_RANGE: 'REWIND_ERR_OUT_OF_RANGE',
  NOT_FOUND: 'REWIND_ERR_NOT_FOUND',
  ALREADY_EXISTS: 'REWIND_ERR_ALREADY_EXISTS',
  IO: 'REWIND_ERR_IO',
  NO_SPACE: 'REWIND_ERR_NO_SPACE',
  READ_ONLY: 'REWIND_ERR_READ_ONLY',
  UNSUPPORTED: 'REWIND_ERR_UNSUPPORTED',
  PROTOCOL: 'REWIND_ERR_PROTOCOL',
  JOURNAL_CORRUPT: 'REWIND_ERR_JOURNAL_CORRUPT',
  JOURNAL_TORN_TAIL: 'REWIND_ERR_JOURNAL_TORN_TAIL',
  JOURNAL_SEQ_GAP: 'REWIND_ERR_JOURNAL_SEQ_GAP',
  SPOOL_FULL: 'REWIND_ERR_SPOOL_FULL',
  CHECKSUM_MISMATCH: 'REWIND_ERR_CHECKSUM_MISMATCH',
  POINT_OUT_OF_WINDOW: 'REWIND_ERR_POINT_OUT_OF_WINDOW',
  /** The point falls while the node was resending the volume: the collector's copy is partial there. */
  POINT_NOT_EXACT: 'REWIND_ERR_POINT_NOT_EXACT',
  UNAUTHENTICATED: 'REWIND_ERR_UNAUTHENTICATED',
  /** An administrative call (RegisterVolume, DeleteVolume) without the collector's admin token. */
  ADMIN_UNAUTHENTICATED: 'REWIND_ERR_ADMIN_UNAUTHENTICATED',
  PERMISSION_DENIED: 'REWIND_ERR_PERMISSION_DENIED',
  UNAVAILABLE: 'REWIND_ERR_UNAVAILABLE',
  CLOSED: 'REWIND_ERR_CLOSED',
  /** Another writer (a VolumeRestore filling the volume) holds it; wait for it to finish. */
  VOLUME_BUSY: 'REWIND_ERR_VOLUME_BUSY',
  /** A collector bound on Append streams (in total or for one volume) is reached; retry later. */
  TOO_MANY_STREAMS: 'REWIND_ERR_TOO_MANY_STREAMS',
  TIMEOUT: 'REWIND_ERR_TIMEOUT',
  INTERNAL: 'REWIND_ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class RewindError extends Error {
  readonly code: ErrorCode;
  /** Structured facts for logs and API bodies (volume, segment, offset, ...). */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RewindError';
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isRewindError(err: unknown, code?: ErrorCode): err is RewindError {
  return err instanceof RewindError && (code === undefined || err.code === code);
}

/** Map a Node system error (EIO, ENOSPC, ...) onto our codes, keeping the cause. */
export function fromSystemError(err: unknown, what: string): RewindError {
  if (err instanceof RewindError) return err;
  const sys = err as NodeJS.ErrnoException;
  switch (sys?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new RewindError(ErrorCodes.NO_SPACE, `${what}: no space left on device; free space or grow the volume, then retry`, { cause: err });
    case 'ENOENT':
      return new RewindError(ErrorCodes.NOT_FOUND, `${what}: no such file or directory`, { cause: err });
    case 'EROFS':
    case 'EACCES':
    case 'EPERM':
      return new RewindError(ErrorCodes.READ_ONLY, `${what}: not writable (${sys.code}); check permissions and mount options`, { cause: err });
    default:
      return new RewindError(ErrorCodes.IO, `${what}: ${sys?.message ?? String(err)}`, { cause: err });
  }
}
