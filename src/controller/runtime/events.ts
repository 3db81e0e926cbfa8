import crypto from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../core/logger.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/**
 * Kubernetes Events (core/v1, what `kubectl describe` and `kubectl get events` show) for
 * every transition the controller makes. Best effort: a failed event is logged, it never
 * fails the reconcile that made it.
 */
export class EventRecorder {
  private readonly core: k8s.CoreV1Api;

  constructor(kc: k8s.KubeConfig, private readonly component: string, private readonly instance: string, private readonly log: Logger) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async record(obj: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const namespace = obj.metadata.namespace ?? 'default';
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${obj.metadata.name}.${crypto.randomBytes(8).toString('hex')}`, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name: obj.metadata.name,
            namespace,
            uid: obj.metadata.uid,
            resourceVersion: obj.metadata.resourceVersion,
          },
          type,
          reason,
          message,
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: this.component },
          reportingComponent: this.component,
          reportingInstance: this.instance,
        },
      });
    } catch (err) {
      this.log.warn('could not record an event', { reason, object: `${namespace}/${obj.metadata.name}`, err: String(err) });
    }
  }
}
