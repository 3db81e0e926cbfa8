/**
 * Structured logs, one JSON object per line on stderr (stdout stays for command output).
 * Level from REWIND_LOG (debug|info|warn|error|silent), default info.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function replacer(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Error) return { message: v.message, code: (v as { code?: string }).code };
  return v;
}

export function createLogger(
  base: Record<string, unknown> = {},
  level: Level = (process.env.REWIND_LOG as Level) || 'info',
  sink: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const min = RANK[level] ?? RANK.info;
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    sink(JSON.stringify({ t: new Date().toISOString(), level: lvl, msg, ...base, ...fields }, replacer) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger({ ...base, ...f }, level, sink),
  };
}

export const silentLogger: Logger = createLogger({}, 'silent');
