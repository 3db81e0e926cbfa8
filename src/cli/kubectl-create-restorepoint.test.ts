import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig, loadYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { CRDS, type RestorePoint } from '../api/index.js';
import { schemaErrors } from '../api/schema-check.js';
import { CREATE_RESTOREPOINT_USAGE, main } from './kubectl-create-restorepoint.js';
import { namespaceOf, parsePluginArgs, KUBECTL_OPTIONS } from './kubectl-common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NOW_NS = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const rpSchema = CRDS.find((c) => c.spec.names.kind === 'RestorePoint')!.spec.versions[0]!.schema.openAPIV3Schema;

/** A cluster nothing listens on: port 1 refuses at once. */
function unreachable(namespace?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u', ...(namespace ? { namespace } : {}) }],
    currentContext: 'ctx',
  });
  return kc;
}

async function run(argv: string[], kubeConfig?: KubeConfig) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s), nowNs: () => NOW_NS, kubeConfig });
  return { code, out, err };
}

/** What the API server checks of a RestorePoint: the OpenAPI schema, and the CEL exactly-one rule. */
function expectValidRestorePoint(rp: RestorePoint): void {
  expect(schemaErrors(rp, rpSchema)).toEqual([]);
  for (const field of rpSchema.required!) expect(rp).toHaveProperty(field);
  expect(rp.spec.volume !== undefined).not.toBe(rp.spec.selector !== undefined);
}

describe('kubectl create restorepoint --dry-run=client', () => {
  it('-o yaml prints a valid RestorePoint, with no cluster and no kubeconfig', async () => {
    const r = await run(['x', '--volume', 'data', '--dry-run=client', '-o', 'yaml', '--kubeconfig', '/nonexistent/kubeconfig']);
    expect(r).toMatchObject({ code: 0, err: '' });
    const rp = loadYaml<RestorePoint>(r.out);
    expect(rp.apiVersion).toBe('cdp.rewind.dev/v1alpha1');
    expect(rp.kind).toBe('RestorePoint');
    expect(rp.metadata).toEqual({ name: 'x' });
    expect(rp.spec).toEqual({ volume: 'data' });
    expectValidRestorePoint(rp);
  });

  it('--at takes what rewind takes and writes it as absolute RFC 3339; -n names the namespace', async () => {
    const rel = await run(['x', '--volume', 'data', '--at', '90s ago', '-n', 'team-a', '--dry-run=client', '-o', 'yaml']);
    expect(rel.code).toBe(0);
    const rp = loadYaml<RestorePoint>(rel.out);
    expect(rp.spec.at).toBe('2025-12-31T23:58:30Z');
    expect(rp.metadata.namespace).toBe('team-a');
    expectValidRestorePoint(rp);
    const abs = await run(['x', '--volume', 'data', '--at', '2026-11-22T11:00:00.25+01:00', '--dry-run=client', '-o', 'json']);
    expect(JSON.parse(abs.out).spec.at).toBe('2026-11-22T10:00:00.25Z');
  });

  it('-o json is the same object; -o name and the default output are what kubectl prints', async () => {
    const json = await run(['before', '--volume', 'data', '--dry-run=client', '-o', 'json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual({ apiVersion: 'cdp.rewind.dev/v1alpha1', kind: 'RestorePoint', metadata: { name: 'before' }, spec: { volume: 'data' } });
    expectValidRestorePoint(JSON.parse(json.out));
    expect((await run(['before', '--volume', 'data', '--dry-run=client', '-o', 'name'])).out).toBe('restorepoint.cdp.rewind.dev/before\n');
    expect((await run(['before', '--volume', 'data', '--dry-run=client'])).out).toBe('restorepoint.cdp.rewind.dev/before created (dry run)\n');
    expect((await run(['before', '--dry-run', 'client', '--volume=data'])).code).toBe(0);
  });
});

describe('kubectl create restorepoint: bad input', () => {
  const cases: Array<[string, string[], number, RegExp]> = [
    ['no NAME', ['--volume', 'data', '--dry-run=client'], 2, /NAME is required/],
    ['two NAMEs', ['a', 'b', '--volume', 'data', '--dry-run=client'], 2, /one NAME only/],
    ['a NAME that is not DNS-1123', ['Before_Upgrade', '--volume', 'data', '--dry-run=client'], 2, /not a valid object name/],
    ['a NAME too long', ['x'.repeat(254), '--volume', 'data', '--dry-run=client'], 2, /not a valid object name/],
    ['no --volume', ['x', '--dry-run=client'], 2, /--volume PVC is required/],
    ['a bad --volume', ['x', '--volume', 'Data', '--dry-run=client'], 2, /not a valid PVC name/],
    ['a bad --at', ['x', '--volume', 'data', '--at', 'yesterday', '--dry-run=client'], 2, /--at: cannot read "yesterday" as an instant/],
    ['a date that does not exist', ['x', '--volume', 'data', '--at', '2026-02-30T00:00:00Z', '--dry-run=client'], 2, /--at/],
    ['a bad --dry-run', ['x', '--volume', 'data', '--dry-run=maybe'], 2, /--dry-run must be none, client or server/],
    ['-o wide', ['x', '--volume', 'data', '--dry-run=client', '-o', 'wide'], 2, /-o must be one of yaml, json, name/],
    ['an unknown flag', ['x', '--volume', 'data', '--selector', 'a=b'], 2, /Unknown option '--selector'/],
  ];
  for (const [what, argv, code, msg] of cases) {
    it(`${what} → exit ${code} with a message saying what to do`, async () => {
      const r = await run(argv);
      expect(r.code).toBe(code);
      expect(r.out).toBe('');
      expect(r.err).toMatch(msg);
      expect(r.err).toMatch(/^error: kubectl create restorepoint: /);
    });
  }

  it('a cluster that cannot be reached → exit 1, for a create and for a server dry run', async () => {
    for (const dry of ['none', 'server']) {
      const r = await run(['x', '--volume', 'data', `--dry-run=${dry}`], unreachable());
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/cannot reach the API server|ECONNREFUSED/);
    }
  });

  it('a --context the kubeconfig lacks → exit 1 naming it', async () => {
    const r = await run(['x', '--volume', 'data', '--context', 'prod'], unreachable());
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/context "prod" is not in the kubeconfig/);
  });
});

describe('kubectl create restorepoint: namespace and help', () => {
  it('takes the namespace from -n, else the context, else default', () => {
    const p = (argv: string[]) => parsePluginArgs(argv, KUBECTL_OPTIONS, 'test');
    expect(namespaceOf(p(['-n', 'a']), unreachable('b'))).toBe('a');
    expect(namespaceOf(p(['--namespace=a']), unreachable('b'))).toBe('a');
    expect(namespaceOf(p([]), unreachable('b'))).toBe('b');
    expect(namespaceOf(p([]), unreachable())).toBe('default');
    expect(namespaceOf(p([]), undefined)).toBe('default');
  });

  it('--help exits 0 and names every option the plugin accepts', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(CREATE_RESTOREPOINT_USAGE);
    for (const f of ['--volume', '--at', '--dry-run', '-o, --output', '-n, --namespace', '--kubeconfig', '--context']) expect(r.out).toContain(f);
    expect((await run(['-h'])).code).toBe(0);
  });
});

describe('bin/kubectl-create-restorepoint', () => {
  it('is what kubectl runs: prints the RestorePoint and exits 0; a bad input exits 2', () => {
    const bin = path.join(ROOT, 'bin', 'kubectl-create-restorepoint');
    expect(fs.existsSync(path.join(ROOT, 'dist/src/cli/kubectl-create-restorepoint.js')), 'dist/ is missing: run npm run build').toBe(true);
    const env = { ...process.env, KUBECONFIG: '/nonexistent/kubeconfig' };
    const ok = spawnSync(bin, ['x', '--volume', 'data', '--dry-run=client', '-o', 'yaml'], { encoding: 'utf8', env });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expectValidRestorePoint(loadYaml<RestorePoint>(ok.stdout));
    const bad = spawnSync(bin, ['x', '--dry-run=client'], { encoding: 'utf8', env });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--volume PVC is required/);
  });
});
