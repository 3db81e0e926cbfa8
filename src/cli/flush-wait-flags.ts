import { ErrorCodes, RewindError } from '../core/errors.js';
import { parseDuration } from '../core/time-parse.js';
import { DEFAULT_FLUSH_WAIT, type FlushWaitOptions } from '../ship/flush-wait.js';
import { str, type ParsedArgs } from './args.js';

/** `rewind serve` and `rewind up` take the same two flags (src/ship/flush-wait.ts). */
export const FLUSH_WAIT_OPTIONS = {
  'flush-wait-timeout': { type: 'string' },
  'flush-wait-policy': { type: 'string' },
} as const;

export const FLUSH_WAIT_HELP = `--flush-wait-timeout  longest a flush-sync FLUSH/FUA (sync: every write) waits for the
               collector (default 25s, under the 30s I/O timeout NBD clients are commonly
               given; 0 = no bound). Past it the volume is Degraded (FlushWaitTimeout, in
               /v1/status and rewind_durability_degraded) until the collector holds what
               the spool held then
--flush-wait-policy  what a wait past the deadline does: async (default) completes it once
               durable on this node, and FLUSH/FUA stay local only while Degraded; fail
               fails it (EIO to the client)`;

export function flushWaitFromArgs(args: ParsedArgs): FlushWaitOptions {
  const t = str(args, 'flush-wait-timeout');
  const policy = str(args, 'flush-wait-policy') ?? DEFAULT_FLUSH_WAIT.policy;
  if (policy !== 'async' && policy !== 'fail') {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--flush-wait-policy must be async or fail, not "${policy}"`);
  }
  if (t === undefined) return { ...DEFAULT_FLUSH_WAIT, policy };
  const ns = t.trim() === '0' ? 0n : parseDuration(t);
  if (ns > 0n && ns < 1_000_000n) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--flush-wait-timeout must be 0 (no bound) or at least 1ms, not "${t}"`);
  return { timeoutMs: Number(ns / 1_000_000n), policy };
}
