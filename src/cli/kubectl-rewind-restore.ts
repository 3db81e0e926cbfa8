/**
 * `kubectl rewind restore`: creates a VolumeRestore and, with --wait, follows it to
 * Completed or Failed, printing progress as the controller reports it.
 */
import { parseDuration, parseInstant } from '../core/time-parse.js';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { CRDS, formatRfc3339, isDns1123Subdomain, type VolumeRestore, type VolumeRestoreSpec } from '../api/index.js';
import { schemaErrors } from '../api/schema-check.js';
import { createVolumeRestore, DRY_RUN_VALUES, getVolumeRestore, volumeRestoreObject, type DryRun } from './kubectl-api.js';
import {
  bytes,
  KUBECTL_OPTIONS,
  loadKubeConfig,
  namespaceOf,
  outputOpt,
  printObject,
  qualifiedName,
  strOpt,
  usageError,
  type Parsed,
  type PluginIo,
} from './kubectl-common.js';

const PROG = 'kubectl rewind restore';

export const RESTORE_OPTIONS = {
  ...KUBECTL_OPTIONS,
  point: { type: 'string' },
  at: { type: 'string' },
  'to-pvc': { type: 'string' },
  'in-place': { type: 'boolean' },
  'storage-class': { type: 'string' },
  size: { type: 'string' },
  name: { type: 'string' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  'dry-run': { type: 'string' },
} as const;

export const RESTORE_HELP = `Restore a protected volume as of a RestorePoint or an instant (creates a VolumeRestore).

Usage:
  kubectl rewind restore PVC (--point NAME | --at TIME) (--to-pvc NAME | --in-place) [options]

Options:
  --point NAME           a RestorePoint of the volume
  --at TIME              an instant: RFC 3339, "90s ago", "now"
  --to-pvc NAME          restore into a new PVC of this name (filled before its first use)
  --in-place             revert the volume itself, only the changed blocks; refused while
                         anything has the volume attached
  --storage-class SC     StorageClass of the new PVC (default: the default Rewind class)
  --size SIZE            size of the new PVC, e.g. 20Gi (default: the volume's size)
  --name NAME            name of the VolumeRestore (default: PVC-restore-<random>)
  --wait                 follow it to Completed or Failed, printing progress
  --timeout DURATION     with --wait: give up after this long, e.g. 10m (default: never)
  --dry-run MODE         none (default), client (print, no cluster), server (validate only)
  -o, --output FORMAT    yaml, json or name
`;

const vrSchema = CRDS.find((c) => c.spec.names.kind === 'VolumeRestore')!.spec.versions[0]!.schema.openAPIV3Schema;

export async function restore(p: Parsed, io: Required<Omit<PluginIo, 'kubeConfig'>> & Pick<PluginIo, 'kubeConfig'>): Promise<number> {
  const [pvc, ...extra] = p.positionals;
  if (!pvc) throw usageError('PVC is required (kubectl rewind restore PVC ...)', PROG);
  if (extra.length > 0) throw usageError(`one PVC only; unexpected ${extra.map((e) => `"${e}"`).join(' ')}`, PROG);
  if (!isDns1123Subdomain(pvc)) throw usageError(`"${pvc}" is not a valid PVC name`, PROG);
  const point = strOpt(p, 'point');
  const atText = strOpt(p, 'at');
  if ((point === undefined) === (atText === undefined)) throw usageError('give exactly one of --point NAME or --at TIME', PROG);
  const toPvc = strOpt(p, 'to-pvc');
  const inPlace = p.values['in-place'] === true;
  if ((toPvc === undefined) === !inPlace) throw usageError('give exactly one of --to-pvc NAME or --in-place', PROG);
  if (inPlace && (strOpt(p, 'storage-class') || strOpt(p, 'size'))) throw usageError('--storage-class and --size apply to --to-pvc only', PROG);
  const dryRun = (strOpt(p, 'dry-run') ?? 'none') as DryRun;
  if (!DRY_RUN_VALUES.includes(dryRun)) throw usageError(`--dry-run must be none, client or server, not "${dryRun}"`, PROG);
  if (dryRun !== 'none' && p.values.wait) throw usageError('--wait has nothing to follow with --dry-run', PROG);
  const output = outputOpt(p, ['yaml', 'json', 'name'] as const, PROG);
  let timeoutMs = 0;
  if (strOpt(p, 'timeout') !== undefined) {
    try {
      timeoutMs = Number(parseDuration(strOpt(p, 'timeout')!) / 1_000_000n);
    } catch (err) {
      throw usageError(`--timeout: ${(err as Error).message}`, PROG);
    }
  }
  let at: string | undefined;
  if (atText !== undefined) {
    try {
      at = formatRfc3339(parseInstant(atText, io.nowNs()));
    } catch (err) {
      throw usageError(`--at: ${(err as Error).message}`, PROG);
    }
  }

  const size = strOpt(p, 'size');
  const spec: VolumeRestoreSpec = {
    volume: pvc,
    source: point !== undefined ? { restorePoint: point } : { at: at! },
    target: inPlace
      ? { inPlace: true }
      : { newPVC: { name: toPvc!, ...(strOpt(p, 'storage-class') ? { storageClassName: strOpt(p, 'storage-class')! } : {}), ...(size ? { size } : {}) } },
  };
  const kc = dryRun === 'client' ? undefined : loadKubeConfig(p, io.kubeConfig);
  const namespace = namespaceOf(p, kc);
  const vr = volumeRestoreObject({ name: strOpt(p, 'name'), namespace: dryRun === 'client' ? strOpt(p, 'namespace') : namespace, spec });
  const problems = schemaErrors(vr, vrSchema);
  if (problems.length > 0) throw usageError(`the VolumeRestore would be invalid: ${problems.join('; ')}`, PROG);

  const created = dryRun === 'client' ? vr : await createVolumeRestore(kc!, namespace, vr, dryRun);
  if (output) printObject(io, created, output);
  else io.out(`${qualifiedName(created)} created${dryRun === 'client' ? ' (dry run)' : dryRun === 'server' ? ' (server dry run)' : ''}\n`);
  if (!p.values.wait) return 0;

  // Poll rather than watch: one GET a second is nothing for the API server, and it needs
  // only the `get` permission a user who may create restores already has.
  const name = created.metadata.name!;
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let last = '';
  for (;;) {
    const cur = await getVolumeRestore(kc!, namespace, name);
    const line = progressLine(cur);
    if (line !== last) io.err(`${line}\n`);
    last = line;
    if (cur.status?.phase === 'Completed') return 0;
    if (cur.status?.phase === 'Failed') {
      const why = cur.status.conditions?.find((c) => c.status === 'True' && c.type === 'Failed') ?? cur.status.conditions?.find((c) => c.status === 'False');
      throw new RewindError(ErrorCodes.INTERNAL, `${qualifiedName(cur)} failed${why ? `: ${why.reason}: ${why.message}` : ''}`);
    }
    if (Date.now() >= deadline) {
      throw new RewindError(ErrorCodes.TIMEOUT, `${qualifiedName(cur)} is still ${cur.status?.phase ?? 'Pending'} after ${strOpt(p, 'timeout')}; follow it with \`kubectl get rwvr ${name} -w\``);
    }
    await io.sleep(1000);
  }
}

export function progressLine(vr: VolumeRestore): string {
  const s = vr.status ?? {};
  const phase = s.phase ?? 'Pending';
  if (s.bytesTotal === undefined) return phase;
  const pct = s.bytesTotal > 0 ? Math.floor(((s.bytesDone ?? 0) * 100) / s.bytesTotal) : 100;
  return `${phase} ${bytes(s.bytesDone ?? 0)} / ${bytes(s.bytesTotal)} (${pct}%)`;
}
