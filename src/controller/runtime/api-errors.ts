/**
 * @kubernetes/client-node 1.x throws ApiException with `code` (the HTTP status) and the
 * Status object as a JSON string in `body`; older paths used `statusCode`. One place reads both.
 */
export function statusCodeOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** The API server's own message from a failed call, for logs and conditions. */
export function apiMessageOf(err: unknown): string {
  const body = (err as { body?: unknown } | undefined)?.body;
  if (typeof body === 'string') {
    try {
      const s = JSON.parse(body) as { message?: string };
      if (s.message) return s.message;
    } catch {
      return body.slice(0, 500);
    }
  }
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return err instanceof Error ? err.message : String(err);
}

export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
