import { ErrorCodes, RewindError } from '../core/errors.js';

const SUFFIX: Record<string, bigint> = {
  '': 1n,
  k: 1000n, M: 1000n ** 2n, G: 1000n ** 3n, T: 1000n ** 4n, P: 1000n ** 5n, E: 1000n ** 6n,
  Ki: 1024n, Mi: 1024n ** 2n, Gi: 1024n ** 3n, Ti: 1024n ** 4n, Pi: 1024n ** 5n, Ei: 1024n ** 6n,
};

/**
 * A Kubernetes resource.Quantity of bytes ("1Gi", "500M", "1073741824") as a bigint.
 * Only the forms a storage request takes; fractions and exponents round up to a byte.
 */
export function parseByteQuantity(q: string): bigint {
  const m = /^([0-9]+)(?:\.([0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|)$/.exec(q.trim());
  if (!m || SUFFIX[m[3]!] === undefined) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `storage quantity "${q}" is not a byte size this controller reads; use a plain number or a suffix such as Mi, Gi, G`);
  }
  const unit = SUFFIX[m[3]!]!;
  const frac = m[2] ?? '';
  const scale = 10n ** BigInt(frac.length);
  const n = (BigInt(m[1]!) * scale + BigInt(frac || '0')) * unit;
  return (n + scale - 1n) / scale;
}
