/** metav1.Condition, as the CRDs of src/api define it. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/**
 * Sets one condition in a copy of `conditions`. lastTransitionTime moves only when the
 * status changes (what the API conventions ask, and what `kubectl wait` relies on).
 * Returns the new list and whether the status changed (a transition, worth an event).
 */
export function setCondition(conditions: Condition[] | undefined, c: ConditionInput, generation: number | undefined, now: Date): { conditions: Condition[]; transitioned: boolean } {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? list[i] : undefined;
  const transitioned = prev?.status !== c.status;
  const next: Condition = {
    ...c,
    lastTransitionTime: transitioned || !prev ? now.toISOString().replace(/\.\d{3}Z$/, 'Z') : prev.lastTransitionTime,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return { conditions: list, transitioned };
}

export function conditionOf(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
