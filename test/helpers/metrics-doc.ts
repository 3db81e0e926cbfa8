import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './rewind-process.js';

/** One row of docs/metrics.md. */
export interface DocumentedMetric {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  sides: Set<'node' | 'collector' | 'controller'>;
  labels: string[];
  help: string;
}

const ROW = /^\| `(rewind_[a-z0-9_]+)` \| (counter|gauge|histogram) \| ([a-z, ]+) \|\s*([a-z_, ]*?)\s*\| (.+) \|$/;

/** The metric tables of docs/metrics.md (every row naming a `rewind_…` metric). */
export function documentedMetrics(file = path.join(ROOT, 'docs', 'metrics.md')): Map<string, DocumentedMetric> {
  const out = new Map<string, DocumentedMetric>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('| `rewind_')) continue;
    const m = ROW.exec(line);
    if (!m) throw new Error(`docs/metrics.md: a metric row not in the form | \`name\` | type | side | labels | help |: ${line}`);
    if (out.has(m[1]!)) throw new Error(`docs/metrics.md lists ${m[1]} twice`);
    out.set(m[1]!, {
      name: m[1]!,
      type: m[2] as DocumentedMetric['type'],
      sides: new Set(m[3]!.split(',').map((s) => s.trim()) as Array<'node' | 'collector' | 'controller'>),
      labels: m[4]!.split(',').map((s) => s.trim()).filter(Boolean),
      help: m[5]!,
    });
  }
  return out;
}

/** HELP and TYPE of each metric family in a Prometheus text exposition. */
export function exposition(text: string): Map<string, { help?: string; type?: string }> {
  const out = new Map<string, { help?: string; type?: string }>();
  for (const line of text.split('\n')) {
    const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (!m) continue;
    const e = out.get(m[2]!) ?? {};
    if (m[1] === 'HELP') e.help = m[3]!.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    else e.type = m[3]!;
    out.set(m[2]!, e);
  }
  return out;
}

/** The value of one sample (`name{labels}` exactly as exposed, labels in order), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1).split(' ')[0]);
  }
  return undefined;
}

/** Sum of every sample of a family whose labels include all of `labels` (`k="v"` strings). */
export function sumOf(text: string, name: string, labels: string[] = []): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels.every((l) => (m[2] ?? '').includes(l))) sum += Number(m[3]);
  }
  return sum;
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

/**
 * Metric names a PromQL expression reads: every identifier that is not a label name (inside
 * {…}, by(…), without(…), on(…), ignoring(…), group_left/right(…)), a function, a keyword or
 * a duration (numbers never match). Histogram series (`_bucket`, `_sum`, `_count`) are given as their family.
 */
export function promqlMetricNames(expr: string, histograms: ReadonlySet<string>): Set<string> {
  let e = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""'); // strings
  e = e.replace(/#[^\n]*/g, ''); // comments
  e = e.replace(/\{[^}]*\}/g, ''); // matchers
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // grouping labels
  e = e.replace(/\[[^\]]*\]/g, ''); // ranges and subqueries
  // Numbers and durations (1e9, 0.9, 5m) are consumed whole, so no name is read inside them.
  const words = (e.match(/[0-9][0-9a-zA-Z.]*|[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []).filter((w) => !/^[0-9]/.test(w));
  const out = new Set<string>();
  for (const w of words) {
    if (PROMQL_WORDS.has(w)) continue;
    let name = w;
    for (const s of HISTOGRAM_SUFFIXES) if (w.endsWith(s) && histograms.has(w.slice(0, -s.length))) name = w.slice(0, -s.length);
    out.add(name);
  }
  return out;
}

const PROMQL_WORDS = new Set([
  'and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'Inf', 'NaN',
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'predict_linear', 'histogram_quantile', 'abs', 'absent', 'absent_over_time',
  'ceil', 'floor', 'round', 'clamp', 'clamp_min', 'clamp_max', 'time', 'timestamp', 'vector', 'scalar', 'label_replace', 'label_join',
  'changes', 'resets', 'sort', 'sort_desc', 'min_over_time', 'max_over_time', 'avg_over_time', 'sum_over_time', 'count_over_time',
  'last_over_time', 'present_over_time', 'quantile_over_time', 'day_of_week', 'hour', 'minute', 'month', 'year', 'exp', 'ln', 'log2', 'log10', 'sqrt',
]);
