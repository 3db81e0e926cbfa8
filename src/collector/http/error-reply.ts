import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, RewindError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

/** HTTP status for each stable error code; anything unlisted is a 500. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.INVALID_ARGUMENT]: 400,
  [ErrorCodes.OUT_OF_RANGE]: 400,
  [ErrorCodes.UNAUTHENTICATED]: 401,
  [ErrorCodes.PERMISSION_DENIED]: 403,
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.ALREADY_EXISTS]: 409,
  [ErrorCodes.JOURNAL_SEQ_GAP]: 409,
  [ErrorCodes.POINT_OUT_OF_WINDOW]: 410,
  [ErrorCodes.POINT_NOT_EXACT]: 409,
  [ErrorCodes.UNSUPPORTED]: 501,
  [ErrorCodes.UNAVAILABLE]: 503,
  [ErrorCodes.CLOSED]: 503,
  [ErrorCodes.NO_SPACE]: 507,
  [ErrorCodes.TIMEOUT]: 504,
};

export function httpStatusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

/** Fastify's own validation/parse errors (bad JSON, wrong content type) are client errors. */
function toRewindError(err: unknown): RewindError {
  if (err instanceof RewindError) return err;
  const fe = err as FastifyError;
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = fe.statusCode === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.INVALID_ARGUMENT;
    return new RewindError(code, fe.message, { details: { fastifyCode: fe.code } });
  }
  return new RewindError(ErrorCodes.INTERNAL, `internal error: ${(err as Error)?.message ?? String(err)}; see the collector log`, { cause: err });
}

/** Every error leaves as `{code, message, details}` with the status its code maps to. */
export function errorHandler(log: Logger) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply): void => {
    const re = toRewindError(err);
    const status = httpStatusOf(re.code);
    if (status >= 500) log.error('http request failed', { method: req.method, url: req.url, code: re.code, message: re.message });
    void reply.status(status).type('application/json').send(re.toJSON());
  };
}

/** JSON with bigints as decimal strings (seqs and ns times exceed 2^53). */
export function jsonWithBigints(payload: unknown): string {
  return JSON.stringify(payload, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}
