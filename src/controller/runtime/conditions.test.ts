import { describe, expect, it } from 'vitest';
import { setCondition } from './conditions.js';

describe('setCondition', () => {
  const t1 = new Date('2026-12-04T10:00:00.500Z');
  const t2 = new Date('2026-12-04T11:00:00Z');
  it('moves lastTransitionTime only when the status changes', () => {
    const a = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Waiting', message: 'x' }, 1, t1);
    expect(a.transitioned).toBe(true);
    expect(a.conditions[0]!.lastTransitionTime).toBe('2026-12-04T10:00:00Z');
    const b = setCondition(a.conditions, { type: 'Ready', status: 'False', reason: 'StillWaiting', message: 'y' }, 2, t2);
    expect(b.transitioned).toBe(false);
    expect(b.conditions[0]).toMatchObject({ reason: 'StillWaiting', lastTransitionTime: '2026-12-04T10:00:00Z', observedGeneration: 2 });
    const c = setCondition(b.conditions, { type: 'Ready', status: 'True', reason: 'Done', message: 'z' }, 2, t2);
    expect(c.transitioned).toBe(true);
    expect(c.conditions[0]!.lastTransitionTime).toBe('2026-12-04T11:00:00Z');
  });
  it('keeps one entry per type and leaves the input untouched', () => {
    const a = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'R', message: '' }, 1, t1).conditions;
    const b = setCondition(a, { type: 'Degraded', status: 'False', reason: 'R', message: '' }, 1, t1).conditions;
    expect(b.map((c) => c.type)).toEqual(['Ready', 'Degraded']);
    expect(a.length).toBe(1);
  });
});
