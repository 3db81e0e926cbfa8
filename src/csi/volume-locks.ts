import { aborted } from './csi-error.js';

/**
 * One operation per volume at a time (CSI spec "Concurrency": a plugin SHOULD answer
 * ABORTED when an operation is pending on the volume). A second call is refused at
 * once rather than queued: the CO retries with back-off, and a queued duplicate of a
 * slow NodeStage would only redo what the first one did.
 */
export class VolumeLocks {
  private readonly held = new Map<string, string>();

  async with<T>(key: string, op: string, fn: () => Promise<T>): Promise<T> {
    const pending = this.held.get(key);
    if (pending !== undefined) {
      throw aborted(`${pending} is still in progress on "${key}"; retry ${op} once it finishes`);
    }
    this.held.set(key, op);
    try {
      return await fn();
    } finally {
      this.held.delete(key);
    }
  }

  busy(key: string): boolean {
    return this.held.has(key);
  }
}
