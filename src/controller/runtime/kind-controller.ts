import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../core/logger.js';
import { WorkQueue } from './work-queue.js';

/** What a reconcile asks for next. */
export type ReconcileResult = { done: true } | { requeueAfterMs: number };
export const DONE: ReconcileResult = { done: true };
export const requeueAfter = (ms: number): ReconcileResult => ({ requeueAfterMs: ms });

export interface Reconciler {
  /** Kind name, for logs. */
  readonly kind: string;
  /** Reconciles namespace/name; throws to retry with back-off. */
  reconcile(namespace: string, name: string): Promise<ReconcileResult>;
}

export interface KindControllerOptions {
  kc: k8s.KubeConfig;
  /** API path of the collection to watch, e.g. /apis/cdp.rewind.dev/v1alpha1/restorepoints. */
  path: string;
  list: () => Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;
  reconciler: Reconciler;
  workers?: number;
  logger: Logger;
}

/**
 * One kind's informer → work queue → workers. The informer lists once and then watches
 * from the list's resourceVersion; when a watch ends it resumes from the last version it
 * saw (client-node's ListWatch), and after an error it restarts with back-off from that
 * same version, relisting only when the server says the version is gone (410).
 */
export class KindController {
  readonly queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 30_000 });
  private readonly informer: k8s.Informer<k8s.KubernetesObject> & k8s.ObjectCache<k8s.KubernetesObject>;
  private readonly workers: Promise<void>[] = [];
  private stopped = false;
  private restartTimer?: NodeJS.Timeout;
  private restartDelayMs = 500;
  private readonly log: Logger;

  constructor(private readonly opts: KindControllerOptions) {
    this.log = opts.logger.child({ kind: opts.reconciler.kind });
    this.informer = k8s.makeInformer(opts.kc, opts.path, opts.list);
    const enqueue = (obj: k8s.KubernetesObject) => {
      if (obj.metadata?.name) this.queue.add(`${obj.metadata.namespace ?? ''}/${obj.metadata.name}`);
    };
    this.informer.on(k8s.ADD, enqueue);
    this.informer.on(k8s.UPDATE, enqueue);
    this.informer.on(k8s.DELETE, enqueue);
    this.informer.on(k8s.CONNECT, () => {
      this.restartDelayMs = 500;
    });
    this.informer.on(k8s.ERROR, (err) => {
      if (this.stopped) return;
      this.log.warn('watch failed; resuming', { err: String(err), inMs: this.restartDelayMs });
      this.restartTimer = setTimeout(() => void this.informer.start().catch(() => undefined), this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
    });
  }

  /** Objects as the informer last saw them. */
  cached(namespace?: string): readonly k8s.KubernetesObject[] {
    return this.informer.list(namespace);
  }

  async start(): Promise<void> {
    await this.informer.start();
    for (let i = 0; i < (this.opts.workers ?? 2); i++) this.workers.push(this.work());
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const [namespace, name] = key.split('/', 2) as [string, string];
      const started = Date.now();
      try {
        const r = await this.opts.reconciler.reconcile(namespace, name);
        this.queue.forget(key);
        if ('requeueAfterMs' in r) this.queue.addAfter(key, r.requeueAfterMs);
        this.log.debug('reconciled', { key, ms: Date.now() - started });
      } catch (err) {
        const delay = this.queue.addRateLimited(key);
        this.log.warn('reconcile failed; will retry', { key, err: errText(err), retryInMs: delay, failures: this.queue.failureCount(key) });
      } finally {
        this.queue.done(key);
      }
    }
  }

  /** Stops watching and hands out no more keys; waits for reconciles in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer.stop();
    this.queue.shutDown();
    await Promise.all(this.workers);
  }
}

function errText(err: unknown): string {
  const e = err as { code?: unknown; message?: string; body?: unknown };
  if (typeof e?.code === 'string' && e.message) return `${e.code}: ${e.message}`;
  return e?.message ?? String(err);
}
