import { describe, expect, it } from 'vitest';
import { parseByteQuantity } from './quantity.js';

describe('parseByteQuantity', () => {
  it('reads the binary and decimal suffixes of a storage request', () => {
    expect(parseByteQuantity('64Mi')).toBe(64n << 20n);
    expect(parseByteQuantity('1Gi')).toBe(1n << 30n);
    expect(parseByteQuantity('2G')).toBe(2_000_000_000n);
    expect(parseByteQuantity('4096')).toBe(4096n);
    expect(parseByteQuantity('1.5Ki')).toBe(1536n);
  });
  it('rounds a fraction of a byte up', () => {
    expect(parseByteQuantity('1.5')).toBe(2n);
  });
  it('refuses what is not a byte size, saying which forms it reads', () => {
    expect(() => parseByteQuantity('1Gb')).toThrow(/suffix such as Mi, Gi/);
    expect(() => parseByteQuantity('-1Gi')).toThrow(/REWIND|not a byte size/);
  });
});
