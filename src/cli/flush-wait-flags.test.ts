import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../core/errors.js';
import { flushWaitFromArgs } from './flush-wait-flags.js';

const args = (values: Record<string, string>) => ({ values, positionals: [] });

describe('--flush-wait-timeout and --flush-wait-policy', () => {
  it('default to 25 s and the async fallback, take 0 for no bound, and refuse what they cannot read', () => {
    expect(flushWaitFromArgs(args({}))).toEqual({ timeoutMs: 25_000, policy: 'async' });
    expect(flushWaitFromArgs(args({ 'flush-wait-timeout': '2m', 'flush-wait-policy': 'fail' }))).toEqual({ timeoutMs: 120_000, policy: 'fail' });
    expect(flushWaitFromArgs(args({ 'flush-wait-timeout': '0' }))).toEqual({ timeoutMs: 0, policy: 'async' });
    expect(() => flushWaitFromArgs(args({ 'flush-wait-timeout': 'soon' }))).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }));
    expect(() => flushWaitFromArgs(args({ 'flush-wait-policy': 'eio' }))).toThrow(/must be async or fail/);
  });
});
