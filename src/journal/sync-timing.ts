/**
 * Durations of the journal writers' fdatasync calls, for whoever wants them (the
 * collector's fsync-latency metric). Process-wide and keyed by the journal directory so
 * the writer needs no metrics dependency and a writer reopened after a failure is still
 * seen; `rewind up` runs the node spool and the collector in one process, and each
 * observer keeps the directories it cares about.
 */
export type SyncObserver = (dir: string, seconds: number) => void;

const observers = new Set<SyncObserver>();

export function observeJournalSyncs(fn: SyncObserver): () => void {
  observers.add(fn);
  return () => observers.delete(fn);
}

/** Whether anyone listens: the writer skips the clock reads otherwise. */
export function journalSyncsObserved(): boolean {
  return observers.size > 0;
}

export function reportJournalSync(dir: string, seconds: number): void {
  for (const fn of observers) fn(dir, seconds);
}
