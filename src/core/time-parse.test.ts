import { describe, expect, it } from 'vitest';
import { ErrorCodes } from './errors.js';
import { parseDuration, parseInstant, parseSize } from './time-parse.js';

const NOW = 1_790_000_000_123_456_789n;

describe('parseInstant', () => {
  it('reads RFC 3339 with Z, offsets and fractions to the ns', () => {
    expect(parseInstant('2026-11-22T10:00:00Z')).toBe(BigInt(Date.UTC(2026, 10, 22, 10)) * 1_000_000n);
    expect(parseInstant('2026-11-22T10:00:00.5Z')).toBe(BigInt(Date.UTC(2026, 10, 22, 10)) * 1_000_000n + 500_000_000n);
    expect(parseInstant('2026-11-22t10:00:00.123456789z')).toBe(BigInt(Date.UTC(2026, 10, 22, 10)) * 1_000_000n + 123_456_789n);
    expect(parseInstant('2026-11-22 12:30:00+02:30')).toBe(BigInt(Date.UTC(2026, 10, 22, 10)) * 1_000_000n);
    expect(parseInstant('2026-11-22T05:00:00-05:00')).toBe(BigInt(Date.UTC(2026, 10, 22, 10)) * 1_000_000n);
    expect(parseInstant('2028-02-29T00:00:00Z')).toBe(BigInt(Date.UTC(2028, 1, 29)) * 1_000_000n);
    expect(parseInstant('0050-01-01T00:00:00Z')).toBe(BigInt(Date.parse('0050-01-01T00:00:00Z')) * 1_000_000n); // not 1950
    expect(parseInstant('0004-02-29T12:00:00Z')).toBe(BigInt(Date.parse('0004-02-29T12:00:00Z')) * 1_000_000n);
  });

  it('reads now, ns since the epoch and relative forms against the clock given', () => {
    expect(parseInstant('now', NOW)).toBe(NOW);
    expect(parseInstant('1790000000000000000', NOW)).toBe(1_790_000_000_000_000_000n);
    expect(parseInstant('@42', NOW)).toBe(42n);
    expect(parseInstant('90s ago', NOW)).toBe(NOW - 90_000_000_000n);
    expect(parseInstant('1h30m ago', NOW)).toBe(NOW - 5_400_000_000_000n);
    expect(parseInstant(' 250ms ago ', NOW)).toBe(NOW - 250_000_000n);
  });

  it('refuses dates that do not exist instead of rolling them over, and says what it reads', () => {
    for (const bad of ['2026-02-30T00:00:00Z', '2026-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-00-10T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T23:60:00Z', '2026-01-01T23:59:60Z', '2026-01-01T10:00:00+24:00', '2026-01-01T10:00:00', 'yesterday', '90 ago', '-5s ago', '']) {
      expect(() => parseInstant(bad, NOW), bad).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT, message: expect.stringContaining('RFC 3339') }));
    }
  });
});

describe('parseDuration and parseSize', () => {
  it('reads compound durations and refuses trailing junk', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000_000_000n);
    expect(parseDuration('24h')).toBe(86_400_000_000_000n);
    expect(() => parseDuration('5 minutes')).toThrow(/duration/);
    expect(() => parseDuration('10')).toThrow(/duration/);
  });

  it('reads binary suffixes and refuses what is not a size', () => {
    expect(parseSize('1G')).toBe(1n << 30n);
    expect(parseSize('64KiB')).toBe(64n << 10n);
    expect(parseSize('4096')).toBe(4096n);
    expect(() => parseSize('1.5G')).toThrow(/size/);
  });
});
