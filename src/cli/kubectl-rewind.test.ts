import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig, loadYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { API_VERSION, CRDS, type ProtectedVolume, type RestorePoint, type VolumeRestore } from '../api/index.js';
import { schemaErrors } from '../api/schema-check.js';
import { main, overview, pointsOf, pointsTable, statusTable } from './kubectl-rewind.js';
import { progressLine, RESTORE_HELP, RESTORE_OPTIONS } from './kubectl-rewind-restore.js';
import { labelSelectorMatches } from './kubectl-label-selector.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NOW_NS = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const vrSchema = CRDS.find((c) => c.spec.names.kind === 'VolumeRestore')!.spec.versions[0]!.schema.openAPIV3Schema;

async function run(argv: string[], kubeConfig?: KubeConfig) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s), nowNs: () => NOW_NS, kubeConfig, sleep: async () => {} });
  return { code, out, err };
}

function unreachable(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

describe('kubectl rewind: help', () => {
  it('lists status, points, restore and diff, and exits 0 for --help, 2 with no command', async () => {
    const h = await run(['--help']);
    expect(h.code).toBe(0);
    for (const c of ['status', 'points', 'restore', 'diff']) expect(h.out).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(h.out).toBe(overview());
    expect((await run([])).code).toBe(2);
    const bad = await run(['rollback']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown command "rollback"; one of: status, points, restore, diff/);
  });

  it('each command has --help; restore names every option it accepts', async () => {
    for (const c of ['status', 'points', 'restore', 'diff']) {
      const r = await run([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.out).toContain(`kubectl rewind ${c}`);
      expect(r.out).toContain('--kubeconfig');
    }
    const undocumented = Object.keys(RESTORE_OPTIONS).filter((k) => !['kubeconfig', 'context', 'namespace', 'help'].includes(k) && !RESTORE_HELP.includes(`--${k}`));
    expect(undocumented).toEqual([]);
  });

  it('diff says where diffs are served and creates nothing', async () => {
    const r = await run(['diff', 'data', '--from', 'x']).catch(() => undefined);
    expect(r?.code).toBe(2); // its own flags are not accepted: it has none
    const d = await run(['diff']);
    expect(d.code).toBe(1);
    expect(d.out).toBe('');
    expect(d.err).toMatch(/rewind diff --from POINT --to POINT/);
  });
});

describe('kubectl rewind restore', () => {
  it('--dry-run=client -o yaml prints a valid VolumeRestore into a new PVC, no cluster needed', async () => {
    const r = await run(['restore', 'data', '--point', 'before', '--to-pvc', 'data-copy', '--size', '20Gi', '--dry-run=client', '-o', 'yaml']);
    expect(r).toMatchObject({ code: 0, err: '' });
    const vr = loadYaml<VolumeRestore>(r.out);
    expect(vr).toMatchObject({ apiVersion: API_VERSION, kind: 'VolumeRestore', metadata: { generateName: 'data-restore-' } });
    expect(vr.spec).toEqual({ volume: 'data', source: { restorePoint: 'before' }, target: { newPVC: { name: 'data-copy', size: '20Gi' } } });
    expect(schemaErrors(vr, vrSchema)).toEqual([]);
  });

  it('--at and --in-place make an in-place revert to an absolute instant', async () => {
    const r = await run(['restore', 'data', '--at', '1m ago', '--in-place', '--name', 'undo', '-n', 'team-a', '--dry-run=client', '-o', 'json']);
    expect(r.code).toBe(0);
    const vr = JSON.parse(r.out) as VolumeRestore;
    expect(vr.metadata).toEqual({ name: 'undo', namespace: 'team-a' });
    expect(vr.spec).toEqual({ volume: 'data', source: { at: '2025-12-31T23:59:00Z' }, target: { inPlace: true } });
    expect(schemaErrors(vr, vrSchema)).toEqual([]);
    expect((await run(['restore', 'data', '--at', 'now', '--in-place', '--name', 'undo', '--dry-run=client'])).out).toBe('volumerestore.cdp.rewind.dev/undo created (dry run)\n');
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['no PVC', ['restore', '--point', 'p', '--in-place'], /PVC is required/],
    ['both --point and --at', ['restore', 'data', '--point', 'p', '--at', 'now', '--in-place'], /exactly one of --point NAME or --at TIME/],
    ['neither source', ['restore', 'data', '--in-place'], /exactly one of --point NAME or --at TIME/],
    ['neither target', ['restore', 'data', '--point', 'p'], /exactly one of --to-pvc NAME or --in-place/],
    ['both targets', ['restore', 'data', '--point', 'p', '--in-place', '--to-pvc', 'x'], /exactly one of --to-pvc NAME or --in-place/],
    ['--size with --in-place', ['restore', 'data', '--point', 'p', '--in-place', '--size', '1Gi'], /apply to --to-pvc only/],
    ['a bad --at', ['restore', 'data', '--at', 'last tuesday', '--in-place'], /--at: cannot read/],
    ['a bad --size', ['restore', 'data', '--point', 'p', '--to-pvc', 'x', '--size', 'big', '--dry-run=client'], /would be invalid: .*size/],
    ['a bad --timeout', ['restore', 'data', '--point', 'p', '--in-place', '--wait', '--timeout', 'soon'], /--timeout/],
    ['--wait with a dry run', ['restore', 'data', '--point', 'p', '--in-place', '--wait', '--dry-run=server'], /nothing to follow/],
  ];
  for (const [what, argv, msg] of bad) {
    it(`${what} → exit 2`, async () => {
      const r = await run(argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(msg);
    });
  }

  it('a cluster that cannot be reached → exit 1, for restore, status and points', async () => {
    for (const argv of [['restore', 'data', '--point', 'p', '--in-place'], ['status'], ['points', 'data']]) {
      const r = await run(argv, unreachable());
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.err).toMatch(/cannot reach the API server|ECONNREFUSED/);
    }
  });

  it('progress reads phase and bytes from status', () => {
    const vr = (status: VolumeRestore['status']): VolumeRestore => ({ apiVersion: API_VERSION, kind: 'VolumeRestore', metadata: {}, spec: { volume: 'd', source: { at: 'x' }, target: { inPlace: true } }, status });
    expect(progressLine(vr(undefined))).toBe('Pending');
    expect(progressLine(vr({ phase: 'Running', bytesDone: 512 * 1024 * 1024, bytesTotal: 2 * 1024 ** 3 }))).toBe('Running 512.0MiB / 2.0GiB (25%)');
    expect(progressLine(vr({ phase: 'Completed', bytesDone: 0, bytesTotal: 0 }))).toBe('Completed 0B / 0B (100%)');
  });
});

const pv = (name: string, status: ProtectedVolume['status'], spec: Partial<ProtectedVolume['spec']> = {}): ProtectedVolume => ({
  apiVersion: API_VERSION,
  kind: 'ProtectedVolume',
  metadata: { name },
  spec: { pvcName: name, ...spec },
  status,
});

const rp = (name: string, spec: RestorePoint['spec'], status?: RestorePoint['status']): RestorePoint => ({
  apiVersion: API_VERSION,
  kind: 'RestorePoint',
  metadata: { name, creationTimestamp: new Date('2025-12-31T23:00:00Z') },
  spec,
  status,
});

describe('kubectl rewind status and points tables', () => {
  it('status shows mode in force, conditions, lag, RPO, journal, window and the age of the latest durable write', () => {
    const cond = (type: string, status: 'True' | 'False', reason: string) => ({ type, status, reason, message: `${reason} message`, lastTransitionTime: '2026-01-01T00:00:00Z' });
    const t = statusTable(
      [
        pv('data', { durability: 'sync', conditions: [cond('Protected', 'True', 'Streaming'), cond('Ready', 'True', 'Streaming'), cond('Degraded', 'False', 'AsExpected')], lagSeconds: 0.04, rpoMet: true, journalBytes: 3 * 1024 ** 2, restorableWindow: { from: '2025-12-31T00:00:00Z', to: '2026-01-01T00:00:00Z' }, latestDurableTime: '2025-12-31T23:59:58Z', durableSeq: 9 }, { rpoTargetSeconds: 5 }),
        pv('logs', { conditions: [cond('Protected', 'False', 'CollectorUnreachable')] }, { durability: 'async' }),
      ],
      true,
      Number(NOW_NS / 1_000_000n),
    );
    const [head, a, b] = t.trimEnd().split('\n');
    expect(head!.split(/\s{3,}/)).toEqual(['NAME', 'PVC', 'MODE', 'PROTECTED', 'READY', 'DEGRADED', 'LAG', 'RPO', 'JOURNAL', 'WINDOW', 'LATEST', 'SEQ', 'COLLECTOR', 'REASON', 'MESSAGE']);
    expect(a).toMatch(/^data\s+data\s+sync\s+True\s+True\s+False\s+0\.0s\s+met \(5s\)\s+3\.0MiB\s+2025-12-31T00:00:00Z\.\.2026-01-01T00:00:00Z\s+2s ago\s+9/);
    expect(b).toMatch(/^logs\s+logs\s+\(async\)\s+False\s.*CollectorUnreachable\s+CollectorUnreachable message$/);
  });

  it("points lists a volume's own points and the group points that select it, oldest first", () => {
    const all = [
      rp('late', { volume: 'data' }, { phase: 'Ready', time: '2026-01-01T00:00:00Z', seq: 30 }),
      rp('other', { volume: 'logs' }, { phase: 'Ready', time: '2025-01-01T00:00:00Z', seq: 1 }),
      rp('early', { volume: 'data', at: '2025-12-31T12:00:00Z' }),
      rp('group', { selector: { matchLabels: { app: 'db' } } }, { phase: 'Ready', time: '2025-12-31T18:00:00Z', seq: 20 }),
      rp('group-other', { selector: { matchLabels: { app: 'web' } } }),
    ];
    expect(pointsOf(all, 'data', { app: 'db' }).map((p) => p.metadata.name)).toEqual(['early', 'group', 'late']);
    expect(pointsOf(all, 'data').map((p) => p.metadata.name)).toEqual(['early', 'late']);
    const t = pointsTable(pointsOf(all, 'data', { app: 'db' }), false, Number(NOW_NS / 1_000_000n)).trimEnd().split('\n');
    expect(t[0]!.split(/\s{3,}/)).toEqual(['NAME', 'PHASE', 'TIME', 'SEQ', 'CHANGED', 'AGE']);
    expect(t[1]).toMatch(/^early\s+Pending\s+\(2025-12-31T12:00:00Z\)\s+60m$/);
    expect(t[3]).toMatch(/^late\s+Ready\s+2026-01-01T00:00:00Z\s+30\s+60m$/);
  });

  it('label selectors follow metav1 semantics', () => {
    const l = { app: 'db', tier: 'prod' };
    expect(labelSelectorMatches({}, l)).toBe(true);
    expect(labelSelectorMatches({ matchLabels: { app: 'db' } }, l)).toBe(true);
    expect(labelSelectorMatches({ matchLabels: { app: 'web' } }, l)).toBe(false);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['prod', 'stage'] }] }, l)).toBe(true);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['prod'] }] }, l)).toBe(false);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, l)).toBe(true);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, l)).toBe(false);
  });
});

describe('bin/kubectl-rewind', () => {
  it('runs the plugin: --help exits 0', () => {
    const r = spawnSync(path.join(ROOT, 'bin', 'kubectl-rewind'), ['--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('kubectl rewind <command>');
  });
});
