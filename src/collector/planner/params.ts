import { ErrorCodes, RewindError } from '../../core/errors.js';
import type { PlanParams } from './plan.js';
import { parseBandwidth, parsePositiveSeconds } from './units.js';

/** The plan query (`rpo`, `link`, `outage`, `bandwidth`, `basis`) as the HTTP API and the CLI read it. */
export function parsePlanParams(q: Record<string, string | undefined>): PlanParams {
  const p: PlanParams = {};
  const has = (k: string) => q[k] !== undefined && q[k] !== '';
  if (has('rpo')) p.rpoSeconds = parsePositiveSeconds(q.rpo!, 'rpo');
  if (has('outage')) p.outageSeconds = parsePositiveSeconds(q.outage!, 'outage');
  if (has('link')) p.linkBytesPerSecond = parseBandwidth(q.link!, 'link');
  if (has('bandwidth')) p.bandwidthBytesPerSecond = parseBandwidth(q.bandwidth!, 'bandwidth');
  if (has('basis')) {
    if (q.basis !== 'written' && q.basis !== 'unique') {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `basis must be "written" (no coalescing) or "unique" (coalescing within each interval), not "${q.basis}"`, { details: { parameter: 'basis' } });
    }
    p.basis = q.basis;
  }
  return p;
}
