import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError, type ErrorCode } from '../core/errors.js';
import { toStatus } from '../rpc/status.js';

/**
 * An error with the gRPC status the CSI spec names for the case (ABORTED for an operation
 * already pending on the volume, FAILED_PRECONDITION for "not staged yet", ...), which the
 * REWIND_ERR_* codes alone cannot carry: the sidecars and kubelet act on the status code.
 */
export class CsiError extends RewindError {
  readonly status: grpc.status;
  constructor(status: grpc.status, code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, options);
    this.name = 'CsiError';
    this.status = status;
  }
}

export const invalidArgument = (msg: string) => new CsiError(grpc.status.INVALID_ARGUMENT, ErrorCodes.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new CsiError(grpc.status.NOT_FOUND, ErrorCodes.NOT_FOUND, msg);
export const alreadyExists = (msg: string) => new CsiError(grpc.status.ALREADY_EXISTS, ErrorCodes.ALREADY_EXISTS, msg);
export const failedPrecondition = (msg: string) => new CsiError(grpc.status.FAILED_PRECONDITION, ErrorCodes.VOLUME_BUSY, msg);
export const aborted = (msg: string) => new CsiError(grpc.status.ABORTED, ErrorCodes.VOLUME_BUSY, msg);
export const outOfRange = (msg: string) => new CsiError(grpc.status.OUT_OF_RANGE, ErrorCodes.OUT_OF_RANGE, msg);
export const resourceExhausted = (msg: string) => new CsiError(grpc.status.RESOURCE_EXHAUSTED, ErrorCodes.NO_SPACE, msg);
export const internal = (msg: string, cause?: unknown) => new CsiError(grpc.status.INTERNAL, ErrorCodes.INTERNAL, msg, cause === undefined ? {} : { cause });

/** Any thrown value → the status a CSI caller sees; the REWIND_ERR_* code rides in the trailers. */
export function toCsiStatus(err: unknown): Partial<grpc.StatusObject> {
  const st = toStatus(err);
  if (err instanceof CsiError) st.code = err.status;
  return st;
}
