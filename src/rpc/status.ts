import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError, type ErrorCode } from '../core/errors.js';

/** Trailing-metadata key carrying our stable REWIND_ERR_* code on every error status. */
export const ERROR_CODE_KEY = 'rewind-error-code';

const TO_GRPC: Partial<Record<ErrorCode, grpc.status>> = {
  [ErrorCodes.INVALID_ARGUMENT]: grpc.status.INVALID_ARGUMENT,
  [ErrorCodes.OUT_OF_RANGE]: grpc.status.OUT_OF_RANGE,
  [ErrorCodes.NOT_FOUND]: grpc.status.NOT_FOUND,
  [ErrorCodes.ALREADY_EXISTS]: grpc.status.ALREADY_EXISTS,
  [ErrorCodes.NO_SPACE]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCodes.SPOOL_FULL]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCodes.TOO_MANY_STREAMS]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCodes.READ_ONLY]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.UNSUPPORTED]: grpc.status.UNIMPLEMENTED,
  [ErrorCodes.PROTOCOL]: grpc.status.INVALID_ARGUMENT,
  [ErrorCodes.JOURNAL_SEQ_GAP]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.VOLUME_BUSY]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.CHECKSUM_MISMATCH]: grpc.status.DATA_LOSS,
  [ErrorCodes.JOURNAL_CORRUPT]: grpc.status.DATA_LOSS,
  [ErrorCodes.POINT_OUT_OF_WINDOW]: grpc.status.OUT_OF_RANGE,
  [ErrorCodes.POINT_NOT_EXACT]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.UNAUTHENTICATED]: grpc.status.UNAUTHENTICATED,
  [ErrorCodes.ADMIN_UNAUTHENTICATED]: grpc.status.UNAUTHENTICATED,
  [ErrorCodes.PERMISSION_DENIED]: grpc.status.PERMISSION_DENIED,
  [ErrorCodes.UNAVAILABLE]: grpc.status.UNAVAILABLE,
  [ErrorCodes.CLOSED]: grpc.status.UNAVAILABLE,
  [ErrorCodes.TIMEOUT]: grpc.status.DEADLINE_EXCEEDED,
};

/** RewindError (or anything) → a grpc-js status object with our code in the trailers. */
export function toStatus(err: unknown): grpc.StatusObject & { message: string } {
  const re = err instanceof RewindError ? err : new RewindError(ErrorCodes.INTERNAL, `internal error: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_KEY, re.code);
  const code = TO_GRPC[re.code] ?? grpc.status.INTERNAL;
  return { code, details: `${re.code}: ${re.message}`, message: re.message, metadata };
}

const FROM_GRPC: Partial<Record<number, ErrorCode>> = {
  [grpc.status.UNAUTHENTICATED]: ErrorCodes.UNAUTHENTICATED,
  [grpc.status.PERMISSION_DENIED]: ErrorCodes.PERMISSION_DENIED,
  [grpc.status.NOT_FOUND]: ErrorCodes.NOT_FOUND,
  [grpc.status.INVALID_ARGUMENT]: ErrorCodes.INVALID_ARGUMENT,
  [grpc.status.DEADLINE_EXCEEDED]: ErrorCodes.TIMEOUT,
  [grpc.status.RESOURCE_EXHAUSTED]: ErrorCodes.NO_SPACE,
  [grpc.status.DATA_LOSS]: ErrorCodes.CHECKSUM_MISMATCH,
};

/** A client-side grpc error → RewindError with the server's code when it sent one. */
export function fromGrpcError(err: unknown, what: string): RewindError {
  if (err instanceof RewindError) return err;
  const e = err as grpc.ServiceError;
  const sent = e?.metadata?.get?.(ERROR_CODE_KEY)?.[0];
  const code = (typeof sent === 'string' && (Object.values(ErrorCodes) as string[]).includes(sent)
    ? sent
    : FROM_GRPC[e?.code] ?? ErrorCodes.UNAVAILABLE) as ErrorCode;
  const detail = e?.details ?? e?.message ?? String(err);
  return new RewindError(code, `${what}: ${detail}`, { cause: err, details: { grpcCode: e?.code } });
}
