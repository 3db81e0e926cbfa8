import { describe, expect, it } from 'vitest';
import { startControllerMetricsHttp } from '../cli/controller-metrics-http.js';
import { documentedMetrics, exposition, sample } from '../../test/helpers/metrics-doc.js';
import { createControllerMetrics } from './controller-metrics.js';

describe('controller metrics', () => {
  it('serve each ProtectedVolume condition on /metrics as docs/metrics.md lists it, and drop an object once it is gone', async () => {
    const m = createControllerMetrics();
    const http = await startControllerMetricsHttp({ host: '127.0.0.1', port: 0 }, m);
    try {
      const cond = (degraded: string) => [{ type: 'Ready', status: 'True' }, { type: 'Protected', status: 'True' }, { type: 'Degraded', status: degraded }];
      m.protectedVolume('ns', 'db', { collectorVolume: 'pvc-1', conditions: cond('True'), lagSeconds: 42.5, rpoTargetSeconds: 30 });
      m.protectedVolume('ns', 'web', { collectorVolume: 'pvc-2', conditions: cond('False'), lagSeconds: 0 });
      const r = await fetch(`${http.url}/metrics`);
      expect(r.status).toBe(200);
      const text = await r.text();
      const exposed = exposition(text);
      const docs = [...documentedMetrics().values()].filter((d) => d.sides.has('controller'));
      expect(docs.length).toBe(4);
      for (const d of docs) expect(exposed.get(d.name), d.name).toEqual({ help: d.help, type: d.type });
      for (const name of exposed.keys()) expect(docs.some((d) => d.name === name), `${name} undocumented`).toBe(true);
      const db = '{namespace="ns",protected_volume="db",volume="pvc-1"}';
      expect(sample(text, `rewind_protected_volume_degraded${db}`)).toBe(1);
      expect(sample(text, `rewind_protected_volume_protected${db}`)).toBe(1);
      expect(sample(text, `rewind_protected_volume_lag_seconds${db}`)).toBe(42.5);
      expect(sample(text, `rewind_protected_volume_rpo_target_seconds${db}`)).toBe(30);
      expect(sample(text, 'rewind_protected_volume_degraded{namespace="ns",protected_volume="web",volume="pvc-2"}')).toBe(0);
      expect(text).not.toContain('rewind_protected_volume_rpo_target_seconds{namespace="ns",protected_volume="web"');

      m.forgetProtectedVolume('ns', 'db');
      const after = await (await fetch(`${http.url}/metrics`)).text();
      expect(after).not.toContain('protected_volume="db"');
      expect(after).toContain('protected_volume="web"');
      expect((await fetch(`${http.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${http.url}/nope`)).status).toBe(404);
    } finally {
      await http.close();
    }
  });
});
