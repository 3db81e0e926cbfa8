import fs from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError, type ErrorCode } from '../core/errors.js';
import { str, type ParsedArgs } from './args.js';

/** Flags every client verb shares. */
export const SERVER_OPTIONS = {
  server: { type: 'string' },
  data: { type: 'string' },
  volume: { type: 'string' },
} as const;

export const SERVER_HELP = `--server URL   the HTTP API of a running \`rewind up\` (default: $REWIND_SERVER, else the
               endpoints.json that \`rewind up\` writes in --data, default ./rewind-data)
--volume NAME  volume (default: the one \`rewind up\` serves)`;

export interface ServerTarget {
  url: string;
  volume: string;
}

export async function resolveServer(args: ParsedArgs): Promise<ServerTarget> {
  const explicit = str(args, 'server') ?? process.env.REWIND_SERVER;
  let endpoints: { http?: string; volume?: string } = {};
  const file = path.join(path.resolve(str(args, 'data') ?? 'rewind-data'), 'endpoints.json');
  try {
    endpoints = JSON.parse(await fs.readFile(file, 'utf8')) as typeof endpoints;
  } catch {
    if (!explicit) {
      throw new RewindError(ErrorCodes.UNAVAILABLE, `no running \`rewind up\` found (${file} is missing); start one, or pass --server http://HOST:PORT`);
    }
  }
  const url = (explicit ?? endpoints.http)!.replace(/\/$/, '');
  const volume = str(args, 'volume') ?? endpoints.volume ?? 'vol0';
  return { url, volume };
}

/** Fetch JSON from the API; API errors come back as RewindErrors with their own code. */
export async function api<T>(t: ServerTarget, method: string, p: string, body?: unknown): Promise<T> {
  const res = await request(t, method, p, body);
  return (await res.json()) as T;
}

export async function request(t: ServerTarget, method: string, p: string, body?: unknown): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${t.url}${p}`, {
      method,
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    });
  } catch (err) {
    throw new RewindError(ErrorCodes.UNAVAILABLE, `cannot reach ${t.url} (${(err as Error).message}); is \`rewind up\` running?`, { cause: err });
  }
  if (!res.ok) {
    const e = (await res.json().catch(() => ({}))) as { code?: ErrorCode; message?: string; details?: Record<string, unknown> };
    throw new RewindError(e.code ?? ErrorCodes.INTERNAL, e.message ?? `HTTP ${res.status} from ${method} ${p}`, { details: e.details ?? {} });
  }
  return res;
}

export const POINT_OPTIONS = {
  at: { type: 'string' },
  mark: { type: 'string' },
  seq: { type: 'string' },
} as const;

export const POINT_HELP = `--at TIME      an instant: RFC 3339 (2026-11-22T10:00:00.5Z), "90s ago", "now", ns since epoch
--mark NAME    a mark
--seq N        a journal sequence number`;

/** The point flags as the API writes them: TIME, mark:NAME or seq:N. */
export function pointParam(args: ParsedArgs, cmd: string): string {
  const given = (['at', 'mark', 'seq'] as const).filter((k) => str(args, k) !== undefined);
  if (given.length !== 1) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `give exactly one of --at, --mark, --seq; see \`rewind ${cmd} --help\``);
  }
  const k = given[0]!;
  const v = str(args, k)!;
  return k === 'at' ? v : `${k}:${v}`;
}
