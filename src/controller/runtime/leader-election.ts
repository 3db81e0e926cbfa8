import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../core/logger.js';
import { statusCodeOf } from './api-errors.js';

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
 * a candidate takes the Lease when it is free or when its holder has not renewed it within
 * leaseDuration — measured on this process's own clock from when it last saw the record
 * change, so clock skew between replicas does not matter. The leader renews every
 * retryPeriod; if it cannot renew for renewDeadline it stops leading (the caller exits, so
 * two leaders never reconcile at once). On a graceful stop the Lease is released so the
 * next replica takes over at once instead of after leaseDuration.
 */
export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger: Logger;
}

export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private observed?: { holder: string; renew: string };
  private observedAt = 0;
  private leading = false;
  private stopped = false;
  private wake?: () => void;

  constructor(kc: k8s.KubeConfig, private readonly opts: LeaderElectionOptions) {
    this.api = kc.makeApiClient(k8s.CoordinationV1Api);
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.renewDeadlineMs < this.leaseMs)) throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Waits until this process leads (true), or until stop() (false). Then keeps renewing in
   * the background and calls onLost once if leadership is lost.
   */
  async acquire(onLost: (why: string) => void): Promise<boolean> {
    while (!this.stopped) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.opts.logger.info('became leader', { lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity });
        void this.renewLoop(onLost);
        return true;
      }
      await this.sleep(this.retryMs);
    }
    return false;
  }

  private async renewLoop(onLost: (why: string) => void): Promise<void> {
    let lastRenew = Date.now();
    while (!this.stopped && this.leading) {
      await this.sleep(this.retryMs);
      if (this.stopped) return;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
        continue;
      }
      if (Date.now() - lastRenew >= this.renewDeadlineMs) {
        this.leading = false;
        const why = `could not renew Lease ${this.opts.namespace}/${this.opts.name} for ${this.renewDeadlineMs} ms`;
        this.opts.logger.error('leadership lost', { identity: this.opts.identity, why });
        onLost(why);
        return;
      }
    }
  }

  /** Stops campaigning/renewing; releases the Lease if this process holds it. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      lease.spec.holderIdentity = undefined;
      lease.spec.leaseDurationSeconds = 1;
      await this.api.replaceNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace, body: lease });
      this.opts.logger.info('released leadership', { identity: this.opts.identity });
    } catch (err) {
      this.opts.logger.warn('could not release the Lease; the next leader waits for it to expire', { err });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    // MicroTime: the API server wants exactly six fractional digits.
    const now = new k8s.V1MicroTime();
    const spec = (transitions: number, acquireTime?: Date): k8s.V1LeaseSpec => ({
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime: acquireTime ? new k8s.V1MicroTime(acquireTime.getTime()) : now,
      renewTime: now,
      leaseTransitions: transitions,
    });
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusCodeOf(err) !== 404) {
        this.opts.logger.warn('reading the Lease failed', { err: String(err) });
        return false;
      }
      try {
        await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: spec(0) } });
        return true;
      } catch (e) {
        if (statusCodeOf(e) !== 409) this.opts.logger.warn('creating the Lease failed', { err: String(e) });
        return false;
      }
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renew = lease.spec?.renewTime ? new Date(lease.spec.renewTime).toISOString() : '';
    if (!this.observed || this.observed.holder !== holder || this.observed.renew !== renew) {
      this.observed = { holder, renew };
      this.observedAt = Date.now();
    }
    const durationMs = (lease.spec?.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
    if (holder !== '' && holder !== identity && this.observedAt + durationMs > Date.now()) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    const acquired = holder === identity && lease.spec?.acquireTime ? new Date(lease.spec.acquireTime) : undefined;
    lease.spec = spec(transitions, acquired);
    try {
      // replace carries the resourceVersion we read: a concurrent candidate gets 409.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if (statusCodeOf(err) !== 409) this.opts.logger.warn('updating the Lease failed', { err: String(err) });
      return false;
    }
  }
}
