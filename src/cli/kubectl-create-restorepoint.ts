/**
 * `kubectl create restorepoint NAME --volume PVC [--at TIME]`: kubectl ≥ 1.31 hands
 * `kubectl create <sub>` it does not know to `kubectl-create-<sub>` on PATH (KEP-3638).
 * Flags and output follow `kubectl create`.
 */
import { parseInstant } from '../core/time-parse.js';
import { CRDS, formatRfc3339, isDns1123Subdomain } from '../api/index.js';
import { schemaErrors } from '../api/schema-check.js';
import { createRestorePoint, DRY_RUN_VALUES, restorePointObject, type DryRun } from './kubectl-api.js';
import {
  defaultIo,
  KUBECTL_FLAGS_HELP,
  KUBECTL_OPTIONS,
  loadKubeConfig,
  namespaceOf,
  outputOpt,
  parsePluginArgs,
  printObject,
  qualifiedName,
  runPlugin,
  strOpt,
  usageError,
  type PluginIo,
} from './kubectl-common.js';

const PROG = 'kubectl create restorepoint';

export const CREATE_RESTOREPOINT_USAGE = `Create a RestorePoint: a named instant of a protected volume, kept for the marks retention.

Usage:
  kubectl create restorepoint NAME --volume PVC [--at TIME] [--dry-run=none|client|server] [-o yaml|json|name]

Examples:
  kubectl create restorepoint before-upgrade --volume data
  kubectl create restorepoint last-night --volume data --at 2026-11-22T02:00:00Z
  kubectl create restorepoint x --volume data --at "90s ago" --dry-run=client -o yaml

Options:
  --volume PVC         the PVC (it needs a ProtectedVolume) the point belongs to (required)
  --at TIME            the instant: RFC 3339, "90s ago", "1h30m ago", "now" (default: when
                       the controller takes it); written into spec.at as RFC 3339. Not in the
                       future: the controller refuses that with a Ready=False condition.
  --dry-run MODE       none (default): create it; client: print the object, no cluster
                       needed; server: the API server validates it and stores nothing
  -o, --output FORMAT  yaml, json or name (default: "restorepoint.cdp.rewind.dev/NAME created")

${KUBECTL_FLAGS_HELP}

Exit status: 0 done, 1 the API server or cluster refused or failed, 2 bad usage.
`;

const OPTIONS = { ...KUBECTL_OPTIONS, volume: { type: 'string' }, at: { type: 'string' }, 'dry-run': { type: 'string' } } as const;

const rpSchema = CRDS.find((c) => c.spec.names.kind === 'RestorePoint')!.spec.versions[0]!.schema.openAPIV3Schema;

/** Entry point of bin/kubectl-create-restorepoint; returns the exit status. */
export async function main(argv: string[], ioIn?: PluginIo): Promise<number> {
  const io = defaultIo(ioIn);
  return runPlugin(PROG, io, async () => {
    const p = parsePluginArgs(argv, OPTIONS, PROG);
    if (p.values.help) {
      io.out(CREATE_RESTOREPOINT_USAGE);
      return 0;
    }
    const [name, ...extra] = p.positionals;
    if (name === undefined) throw usageError('NAME is required (kubectl create restorepoint NAME --volume PVC)', PROG);
    if (extra.length > 0) throw usageError(`one NAME only; unexpected ${extra.map((e) => `"${e}"`).join(' ')}`, PROG);
    if (!isDns1123Subdomain(name)) throw usageError(`NAME "${name}" is not a valid object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253`, PROG);
    const volume = strOpt(p, 'volume');
    if (!volume) throw usageError('--volume PVC is required', PROG);
    if (!isDns1123Subdomain(volume)) throw usageError(`--volume "${volume}" is not a valid PVC name`, PROG);
    const atText = strOpt(p, 'at');
    let at: string | undefined;
    if (atText !== undefined) {
      try {
        at = formatRfc3339(parseInstant(atText, io.nowNs()));
      } catch (err) {
        throw usageError(`--at: ${(err as Error).message}`, PROG);
      }
    }
    const dryRun = (strOpt(p, 'dry-run') ?? 'none') as DryRun;
    if (!DRY_RUN_VALUES.includes(dryRun)) throw usageError(`--dry-run must be none, client or server, not "${dryRun}"`, PROG);
    const output = outputOpt(p, ['yaml', 'json', 'name'] as const, PROG);

    // A client dry run needs no cluster: the kubeconfig is read only for its namespace, and
    // a missing or broken one is no error. Like kubectl, the printed object names a
    // namespace only when -n gave one.
    const kc = dryRun === 'client' ? tryKubeConfig(p, ioIn?.kubeConfig) : loadKubeConfig(p, ioIn?.kubeConfig);
    const namespace = namespaceOf(p, kc);
    const rp = restorePointObject(name, { namespace: dryRun === 'client' ? strOpt(p, 'namespace') : namespace, volume, at });
    // What the API server would refuse on its schema alone, refused here with the same rule.
    const problems = schemaErrors(rp, rpSchema);
    if (problems.length > 0) throw usageError(`the RestorePoint would be invalid: ${problems.join('; ')}`, PROG);

    const result = dryRun === 'client' ? rp : await createRestorePoint(kc!, namespace, rp, dryRun);
    if (output) printObject(io, result, output);
    else io.out(`${qualifiedName(result)} created${dryRun === 'client' ? ' (dry run)' : dryRun === 'server' ? ' (server dry run)' : ''}\n`);
    return 0;
  });
}

function tryKubeConfig(p: Parameters<typeof loadKubeConfig>[0], injected: Parameters<typeof loadKubeConfig>[1]) {
  try {
    return loadKubeConfig(p, injected);
  } catch {
    return undefined;
  }
}
