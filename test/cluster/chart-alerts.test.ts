import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { CHART, ROOT, helm, setArgs, template } from './chart-render.js';
import { find, parseObjects, podSpecOf } from './chart-objects.js';

const MONITORING: Record<string, string | number | boolean> = {
  'prometheusRule.enabled': true,
  'prometheusRule.labels.release': 'prometheus',
  'grafanaDashboard.enabled': true,
  'grafanaDashboard.namespace': 'monitoring',
  'serviceMonitor.enabled': true,
};

describe('charts/rewind monitoring: PrometheusRule, Grafana dashboard, the controller /metrics', () => {
  it('passes helm lint with the monitoring objects on', () => {
    const r = helm(['lint', '--strict', CHART, '--namespace', 'rewind-system', ...setArgs(MONITORING)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('renders no PrometheusRule and no dashboard ConfigMap by default', () => {
    const objects = parseObjects(template());
    expect(objects.filter((o) => o.kind === 'PrometheusRule' || o.kind === 'ServiceMonitor' || o.kind === 'ConfigMap')).toEqual([]);
  });

  it('puts files/alerts.yaml into the PrometheusRule unchanged, so promtool tests what is deployed', () => {
    const objects = parseObjects(template({ values: MONITORING }));
    const rule = find(objects, 'PrometheusRule');
    expect(rule.metadata.namespace).toBe('rewind-system');
    expect(rule.metadata.labels?.release).toBe('prometheus');
    const source = yaml.load(fs.readFileSync(path.join(CHART, 'files', 'alerts.yaml'), 'utf8'));
    expect(rule.spec).toEqual(source);
    // Prometheus' own templates survive helm.
    expect(JSON.stringify(rule.spec)).toContain('{{ $labels.volume }}');
  });

  it('ships files/dashboard.json as a ConfigMap for the Grafana sidecar', () => {
    const cm = find(parseObjects(template({ values: MONITORING })), 'ConfigMap');
    expect(cm.metadata.namespace).toBe('monitoring');
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm.data['rewind.json'])).toEqual(JSON.parse(fs.readFileSync(path.join(CHART, 'files', 'dashboard.json'), 'utf8')));
  });

  it('runs the controller with --metrics on a named port and scrapes it with a second ServiceMonitor', () => {
    const objects = parseObjects(template({ values: MONITORING }));
    const ctl = podSpecOf(find(objects, 'Deployment')).containers.find((c: any) => c.name === 'controller');
    expect(ctl.args).toContain('--metrics=0.0.0.0:8081');
    expect(ctl.ports).toEqual([{ name: 'metrics', containerPort: 8081, protocol: 'TCP' }]);
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name)).toEqual(['rewind-collector', 'rewind-controller']);
    const svc = find(objects, 'Service', 'rewind-controller-metrics');
    expect(svc.spec.selector['app.kubernetes.io/component']).toBe('controller');
    expect(monitors[1]!.spec.selector.matchLabels).toMatchObject({ 'app.kubernetes.io/component': 'controller', 'rewind.dev/service': 'metrics' });
    expect(svc.metadata.labels?.['rewind.dev/service']).toBe('metrics');
    expect(monitors[1]!.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s' }]);

    const off = parseObjects(template({ values: { ...MONITORING, 'controller.metrics.enabled': false } }));
    const ctlOff = podSpecOf(find(off, 'Deployment')).containers.find((c: any) => c.name === 'controller');
    expect(ctlOff.args.join(' ')).not.toContain('--metrics');
    expect(ctlOff.ports).toBeUndefined();
    expect(off.filter((o) => o.kind === 'ServiceMonitor').map((m) => m.metadata.name)).toEqual(['rewind-collector']);
  });

  it.each([
    ['prometheusRule.enabled', { 'prometheusRule.enabled': 'yes' }, /prometheusRule\.enabled: Invalid type\. Expected: boolean, given: string/],
    ['an unknown prometheusRule key', { 'prometheusRule.rules': 'x' }, /prometheusRule: Additional property rules is not allowed/],
    ['grafanaDashboard.namespace', { 'grafanaDashboard.namespace': 'Not_A_Namespace' }, /grafanaDashboard\.namespace: Does not match pattern/],
    ['controller.metrics.port', { 'controller.metrics.port': 0 }, /controller\.metrics\.port: Must be greater than or equal to 1/],
  ] as const)('refuses a bad %s with a message naming it', (_what, values, message) => {
    const r = helm(['template', 'rewind', CHART, ...setArgs(values as Record<string, string | number | boolean>)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it('keeps docs/metrics.md naming the chart files the rules and dashboard live in', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'metrics.md'), 'utf8');
    expect(doc).toContain('charts/rewind/files/alerts.yaml');
    expect(doc).toContain('charts/rewind/files/dashboard.json');
  });
});
