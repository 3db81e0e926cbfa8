import { Gauge, Registry } from 'prom-client';

/**
 * What the controller exports (docs/metrics.md, side "controller"): each ProtectedVolume's
 * conditions and RPO target as the last reconcile wrote them, labelled with the collector
 * volume (`volume`) so alerts can join them with the node and collector series of the same
 * volume. Set by the leader only: a standby replica reconciles nothing and exports no series.
 */
export interface ControllerMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** After a reconcile computed the ProtectedVolume's status. */
  protectedVolume(namespace: string, name: string, s: ProtectedVolumeView): void;
  /** The ProtectedVolume is gone (or being deleted): drop its series. */
  forgetProtectedVolume(namespace: string, name: string): void;
  render(): Promise<string>;
}

/** The parts of a ProtectedVolume (spec + status) the gauges read. */
export interface ProtectedVolumeView {
  collectorVolume?: string;
  conditions?: ReadonlyArray<{ type: string; status: string }>;
  lagSeconds?: number;
  rpoTargetSeconds?: number;
}

type L = 'namespace' | 'protected_volume' | 'volume';

export function createControllerMetrics(opts: { prefix?: string } = {}): ControllerMetrics {
  const p = opts.prefix ?? 'rewind_';
  const registry = new Registry();
  const registers = [registry];
  const labelNames: L[] = ['namespace', 'protected_volume', 'volume'];
  const degraded = new Gauge<L>({ name: `${p}protected_volume_degraded`, help: 'Whether the ProtectedVolume condition Degraded is True (1) or not (0)', labelNames, registers });
  const protectedG = new Gauge<L>({ name: `${p}protected_volume_protected`, help: 'Whether the ProtectedVolume condition Protected is True (1) or not (0)', labelNames, registers });
  const lag = new Gauge<L>({ name: `${p}protected_volume_lag_seconds`, help: 'How far the collector trails the volume, as the ProtectedVolume status reports it (status.lagSeconds)', labelNames, registers });
  const target = new Gauge<L>({ name: `${p}protected_volume_rpo_target_seconds`, help: 'The ProtectedVolume RPO target (spec.rpoTargetSeconds); absent when none is set', labelNames, registers });
  /** Labels last set per object, so a changed collector volume or a deletion removes the old series. */
  const last = new Map<string, Record<L, string>>();
  const all = [degraded, protectedG, lag, target];
  const forget = (key: string): void => {
    const l = last.get(key);
    if (!l) return;
    for (const g of all) g.remove(l);
    last.delete(key);
  };
  return {
    registry,
    contentType: registry.contentType,
    protectedVolume(namespace, name, s) {
      const key = `${namespace}/${name}`;
      const labels = { namespace, protected_volume: name, volume: s.collectorVolume ?? '' };
      const prev = last.get(key);
      if (prev && prev.volume !== labels.volume) forget(key);
      last.set(key, labels);
      const cond = (type: string): number => (s.conditions?.find((c) => c.type === type)?.status === 'True' ? 1 : 0);
      degraded.set(labels, cond('Degraded'));
      protectedG.set(labels, cond('Protected'));
      lag.set(labels, s.lagSeconds ?? 0);
      if (s.rpoTargetSeconds !== undefined) target.set(labels, s.rpoTargetSeconds);
      else target.remove(labels);
    },
    forgetProtectedVolume(namespace, name) {
      forget(`${namespace}/${name}`);
    },
    render: () => registry.metrics(),
  };
}
