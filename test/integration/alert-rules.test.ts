import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { documentedMetrics, promqlMetricNames } from '../helpers/metrics-doc.js';
import { ROOT } from '../helpers/rewind-process.js';

const ALERTS = path.join(ROOT, 'charts', 'rewind', 'files', 'alerts.yaml');
const DASHBOARD = path.join(ROOT, 'charts', 'rewind', 'files', 'dashboard.json');
const RULE_TESTS = path.join(ROOT, 'test', 'integration', 'alerts', 'rules.test.yaml');

interface Rule { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
const rules = (): Rule[] => (yaml.load(fs.readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);

const docs = documentedMetrics();
const histograms = new Set([...docs.values()].filter((d) => d.type === 'histogram').map((d) => d.name));

function undocumented(expr: string): string[] {
  return [...promqlMetricNames(expr, histograms)].filter((n) => !docs.has(n));
}

describe('alert rules (charts/rewind/files/alerts.yaml) under the real promtool', () => {
  let promtool: string;
  beforeAll(() => {
    // Built once with Go (scripts/promtool.sh; scripts/setup.sh does it first): a cold build
    // takes minutes, a warm one returns the cached path at once.
    promtool = execFileSync('bash', [path.join(ROOT, 'scripts', 'promtool.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 15 * 60_000 }).trim().split('\n').pop()!;
    expect(fs.existsSync(promtool), `scripts/promtool.sh printed ${promtool}, which does not exist`).toBe(true);
  }, 15 * 60_000);

  it('passes promtool check rules', () => {
    const r = spawnSync(promtool, ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${rules().length} rules found`);
  });

  it('passes promtool test rules, with a case that fires and one that does not for every alert', () => {
    const r = spawnSync(promtool, ['test', 'rules', path.basename(RULE_TESTS)], { encoding: 'utf8', cwd: path.dirname(RULE_TESTS) });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
    const tests = (yaml.load(fs.readFileSync(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }> }).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of rules().filter((x) => x.alert)) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      expect(mine.some((c) => c.exp_alerts.length > 0), `${rule.alert} has no case where it fires`).toBe(true);
      expect(mine.some((c) => c.exp_alerts.length === 0), `${rule.alert} has no case where it stays quiet`).toBe(true);
    }
  });

  it('covers lag over the RPO target, spool nearly full, scrub errors, protection degraded and disk nearly full', () => {
    const names = rules().map((x) => x.alert);
    for (const a of ['RewindLagOverRpoTarget', 'RewindSpoolNearlyFull', 'RewindScrubErrors', 'RewindProtectionDegraded', 'RewindCollectorDiskNearlyFull']) expect(names).toContain(a);
    for (const rule of rules()) {
      expect(['warning', 'critical'], `${rule.alert} severity`).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, `${rule.alert} summary`).toBeTruthy();
      expect(rule.annotations?.description, `${rule.alert} description`).toBeTruthy();
    }
  });

  it('reads only metrics listed in docs/metrics.md', () => {
    for (const rule of rules()) {
      expect(promqlMetricNames(rule.expr, histograms).size, rule.alert).toBeGreaterThan(0);
      expect(undocumented(rule.expr), `${rule.alert} names metrics docs/metrics.md does not list`).toEqual([]);
    }
    // The extraction itself: a name not documented is caught, label names and functions are not names.
    expect(undocumented('max by (volume) (rate(rewind_nope_total{volume="x"}[5m])) > on (volume) rewind_durable_seq offset 1h')).toEqual(['rewind_nope_total']);
    expect([...promqlMetricNames('histogram_quantile(0.9, sum by (le) (rate(rewind_restore_duration_seconds_bucket[5m])))', histograms)]).toEqual(['rewind_restore_duration_seconds']);
  });
});

describe('Grafana dashboard (charts/rewind/files/dashboard.json)', () => {
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as {
    uid: string; title: string; templating: { list: Array<{ name: string; type: string; query?: unknown; definition?: string }> };
    panels: Array<{ id: number; type: string; title: string; gridPos: unknown; targets?: Array<{ expr: string }>; datasource?: { uid: string } }>;
  };

  it('parses, with unique panel ids, a Prometheus data source variable and a query in every panel', () => {
    expect(dash.uid).toBe('rewind-overview');
    expect(dash.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const graphs = dash.panels.filter((p) => p.type !== 'row');
    expect(graphs.length).toBeGreaterThanOrEqual(15);
    for (const p of graphs) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
    }
  });

  it('queries only metrics listed in docs/metrics.md, and shows every per-volume and per-collector one the issue asks for', () => {
    const used = new Set<string>();
    for (const p of dash.panels) {
      for (const t of p.targets ?? []) {
        const bad = undocumented(t.expr);
        expect(bad, `panel "${p.title}": ${t.expr}`).toEqual([]);
        for (const n of promqlMetricNames(t.expr, histograms)) used.add(n);
      }
    }
    for (const v of dash.templating.list) {
      const m = /label_values\((\w+),/.exec(v.definition ?? '');
      if (m) {
        expect(docs.has(m[1]!), `variable ${v.name}: ${m[1]}`).toBe(true);
        used.add(m[1]!);
      }
    }
    for (const n of ['rewind_write_ops_total', 'rewind_write_bytes_total', 'rewind_entries_appended_total', 'rewind_spool_depth_bytes', 'rewind_shipping_lag_seconds',
      'rewind_durable_seq', 'rewind_journal_bytes', 'rewind_restorable_window_seconds', 'rewind_restores_total', 'rewind_restore_duration_seconds', 'rewind_scrub_problems',
      'rewind_collector_ingest_bytes_total', 'rewind_collector_fsync_duration_seconds', 'rewind_collector_disk_free_bytes', 'rewind_protected_volume_degraded']) {
      expect(used.has(n), `the dashboard shows no ${n}`).toBe(true);
    }
  });
});
