/**
 * `kubectl rewind`: the Kubernetes side of Rewind from a terminal — what is protected and
 * how well, a volume's restore points, and restores. Reads and writes only the cdp.rewind.dev
 * objects (and a PVC's labels for group points); the collector is the controller's business.
 */
import { CoreV1Api } from '@kubernetes/client-node';
import { isDns1123Subdomain, type ProtectedVolume, type RestorePoint } from '../api/index.js';
import { listProtectedVolumes, listRestorePoints } from './kubectl-api.js';
import { labelSelectorMatches } from './kubectl-label-selector.js';
import {
  age,
  bytes,
  defaultIo,
  KUBECTL_FLAGS_HELP,
  KUBECTL_OPTIONS,
  loadKubeConfig,
  namespaceOf,
  outputOpt,
  parsePluginArgs,
  printObject,
  runPlugin,
  table,
  usageError,
  type Parsed,
  type PluginIo,
} from './kubectl-common.js';
import { RESTORE_HELP, RESTORE_OPTIONS, restore } from './kubectl-rewind-restore.js';

type Io = ReturnType<typeof defaultIo>;

interface Sub {
  summary: string;
  help: string;
  options: Parameters<typeof parsePluginArgs>[1];
  run(p: Parsed, io: Io): Promise<number>;
}

const LIST_OUTPUTS = ['json', 'yaml', 'wide', 'name'] as const;

const SUBCOMMANDS: Record<string, Sub> = {
  status: {
    summary: 'ProtectedVolumes and how well each is protected',
    help: `Show ProtectedVolumes: mode in force, conditions, lag, RPO, restorable window, journal size.

Usage:
  kubectl rewind status [PVC] [-o json|yaml|wide|name]

With PVC, only the ProtectedVolume(s) of that PVC; exits 1 when there is none.
`,
    options: KUBECTL_OPTIONS,
    run: status,
  },
  points: {
    summary: "A volume's RestorePoints, oldest first",
    help: `List the RestorePoints of a PVC, ordered by their time (group points whose selector
matches the PVC's labels included).

Usage:
  kubectl rewind points PVC [-o json|yaml|wide|name]
`,
    options: KUBECTL_OPTIONS,
    run: points,
  },
  restore: { summary: 'Restore a volume into a new PVC or in place (creates a VolumeRestore)', help: RESTORE_HELP, options: RESTORE_OPTIONS, run: restore },
  diff: {
    summary: 'Changed extents between two points: served by `rewind diff`, not here',
    help: `The changed extents between two points are read from the collector's bitmaps, which
the Kubernetes API does not carry. kubectl rewind diff creates and reads nothing; use

  rewind diff --from POINT --to POINT --server URL --volume NAME

against the collector (status.collectorVolume of the ProtectedVolume names the volume there).

Usage:
  kubectl rewind diff
`,
    options: KUBECTL_OPTIONS,
    async run(_p, io) {
      io.err(
        'error: kubectl rewind diff: not served through the Kubernetes API; run `rewind diff --from POINT --to POINT --server URL --volume NAME` against the collector (status.collectorVolume names the volume)\n',
      );
      return 1;
    },
  },
};

export function overview(): string {
  const names = Object.keys(SUBCOMMANDS);
  const w = Math.max(...names.map((n) => n.length));
  return `kubectl rewind — Rewind's ProtectedVolumes, RestorePoints and VolumeRestores

Usage:
  kubectl rewind <command> [options]      (kubectl rewind <command> --help for its options)

Commands:
${names.map((n) => `  ${n.padEnd(w)}  ${SUBCOMMANDS[n]!.summary}`).join('\n')}

A RestorePoint is made with \`kubectl create restorepoint NAME --volume PVC\`.

${KUBECTL_FLAGS_HELP}
  -o, --output FORMAT  json, yaml, wide or name (restore: json, yaml or name)

Exit status: 0 done, 1 the API server or cluster refused or failed, 2 bad usage.
`;
}

/** Entry point of bin/kubectl-rewind; returns the exit status. */
export async function main(argv: string[], ioIn?: PluginIo): Promise<number> {
  const io = defaultIo(ioIn);
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(overview());
    return name === undefined ? 2 : 0;
  }
  const sub = SUBCOMMANDS[name];
  if (!sub) {
    io.err(`error: kubectl rewind: unknown command "${name}"; one of: ${Object.keys(SUBCOMMANDS).join(', ')}\n`);
    return 2;
  }
  return runPlugin(`kubectl rewind ${name}`, io, async () => {
    const p = parsePluginArgs(rest, sub.options, `kubectl rewind ${name}`);
    if (p.values.help) {
      io.out(sub.help + '\n' + KUBECTL_FLAGS_HELP + '\n');
      return 0;
    }
    return sub.run(p, io);
  });
}

function condition(obj: { status?: { conditions?: Array<{ type: string; status: string; reason: string; message: string }> } }, type: string) {
  return obj.status?.conditions?.find((c) => c.type === type);
}

function printList(io: Io, items: Array<object & { kind: string }>, output: 'json' | 'yaml' | 'name', single: boolean): void {
  if (output === 'name') for (const i of items) printObject(io, i, 'name');
  else if (single && items.length === 1) printObject(io, items[0]!, output);
  else printObject(io, { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items } as object & { kind: string }, output);
}

async function status(p: Parsed, io: Io): Promise<number> {
  const [pvc, ...extra] = p.positionals;
  if (extra.length > 0) throw usageError('at most one PVC', 'kubectl rewind status');
  if (pvc !== undefined && !isDns1123Subdomain(pvc)) throw usageError(`"${pvc}" is not a valid PVC name`, 'kubectl rewind status');
  const output = outputOpt(p, LIST_OUTPUTS, 'kubectl rewind status');
  const kc = loadKubeConfig(p, io.kubeConfig);
  const ns = namespaceOf(p, kc);
  const pvs = await listProtectedVolumes(kc, ns, pvc);
  if (pvs.length === 0) {
    if (pvc !== undefined) {
      io.err(`error: kubectl rewind status: PVC "${pvc}" in namespace "${ns}" has no ProtectedVolume; create one with spec.pvcName: ${pvc}\n`);
      return 1;
    }
    if (output === 'json' || output === 'yaml') printList(io, [], output, false);
    else io.err(`No ProtectedVolumes found in ${ns} namespace.\n`);
    return 0;
  }
  if (output === 'json' || output === 'yaml' || output === 'name') {
    printList(io, pvs, output, pvc !== undefined);
    return 0;
  }
  io.out(statusTable(pvs, output === 'wide', Number(io.nowNs() / 1_000_000n)));
  return 0;
}

/** The `kubectl rewind status` table. */
export function statusTable(pvs: ProtectedVolume[], wide: boolean, now: number): string {
  const head = ['NAME', 'PVC', 'MODE', 'PROTECTED', 'READY', 'DEGRADED', 'LAG', 'RPO', 'JOURNAL', 'WINDOW', 'LATEST'];
  if (wide) head.push('SEQ', 'COLLECTOR', 'REASON', 'MESSAGE');
  const rows = pvs.map((pv: ProtectedVolume) => {
    const s = pv.status ?? {};
    const w = s.restorableWindow;
    const rpo = pv.spec.rpoTargetSeconds === undefined ? '' : `${s.rpoMet === undefined ? '?' : s.rpoMet ? 'met' : 'MISSED'} (${pv.spec.rpoTargetSeconds}s)`;
    const row = [
      pv.metadata.name ?? '',
      pv.spec.pvcName,
      s.durability ?? `(${pv.spec.durability ?? 'flush-sync'})`,
      condition(pv, 'Protected')?.status ?? '',
      condition(pv, 'Ready')?.status ?? '',
      condition(pv, 'Degraded')?.status ?? '',
      s.lagSeconds === undefined ? '' : `${s.lagSeconds.toFixed(1)}s`,
      rpo,
      bytes(s.journalBytes),
      w?.from || w?.to ? `${w?.from ?? '?'}..${w?.to ?? '?'}` : '',
      s.latestDurableTime ? `${age(s.latestDurableTime, now)} ago` : '',
    ];
    if (wide) {
      // The condition that explains trouble first: Degraded=True, else a False one.
      const why = pv.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True') ?? pv.status?.conditions?.find((c) => c.status !== 'True' && c.type !== 'Degraded');
      row.push(s.durableSeq === undefined ? '' : String(s.durableSeq), pv.spec.collector?.address ?? '', why?.reason ?? '', why?.message ?? '');
    }
    return row;
  });
  return table([head, ...rows]);
}

function pointTime(rp: RestorePoint): string {
  return rp.status?.time ?? rp.spec.at ?? String(rp.metadata.creationTimestamp ?? '');
}

/** A PVC's points (its own, and group points whose selector matches its labels), oldest first. */
export function pointsOf(all: RestorePoint[], pvc: string, labels?: Record<string, string>): RestorePoint[] {
  return all
    .filter((rp) => rp.spec?.volume === pvc || (rp.spec?.selector !== undefined && labels !== undefined && labelSelectorMatches(rp.spec.selector, labels)))
    .sort((a, b) => Date.parse(pointTime(a)) - Date.parse(pointTime(b)) || (a.status?.seq ?? 0) - (b.status?.seq ?? 0));
}

async function points(p: Parsed, io: Io): Promise<number> {
  const [pvc, ...extra] = p.positionals;
  if (!pvc) throw usageError('PVC is required (kubectl rewind points PVC)', 'kubectl rewind points');
  if (extra.length > 0) throw usageError('one PVC only', 'kubectl rewind points');
  const output = outputOpt(p, LIST_OUTPUTS, 'kubectl rewind points');
  const kc = loadKubeConfig(p, io.kubeConfig);
  const ns = namespaceOf(p, kc);
  const all = await listRestorePoints(kc, ns);
  let labels: Record<string, string> | undefined;
  if (all.some((rp) => rp.spec?.selector)) {
    // Group points name PVCs by label: read this PVC's labels, once. Without permission to
    // read PVCs the group points are left out, and the user is told so.
    try {
      labels = (await kc.makeApiClient(CoreV1Api).readNamespacedPersistentVolumeClaim({ name: pvc, namespace: ns })).metadata?.labels ?? {};
    } catch {
      io.err(`warning: cannot read PVC ${ns}/${pvc}; group RestorePoints (spec.selector) are not listed\n`);
    }
  }
  const mine = pointsOf(all, pvc, labels);
  if (output === 'json' || output === 'yaml' || output === 'name') {
    printList(io, mine, output, false);
    return 0;
  }
  if (mine.length === 0) {
    io.err(`No RestorePoints of PVC ${pvc} found in ${ns} namespace.\n`);
    return 0;
  }
  io.out(pointsTable(mine, output === 'wide', Number(io.nowNs() / 1_000_000n)));
  return 0;
}

/** The `kubectl rewind points` table. */
export function pointsTable(mine: RestorePoint[], wide: boolean, now: number): string {
  const head = ['NAME', 'PHASE', 'TIME', 'SEQ', 'CHANGED', 'AGE'];
  if (wide) head.push('GROUP', 'MARK', 'MESSAGE');
  const rows = mine.map((rp) => {
    const row = [
      rp.metadata.name ?? '',
      rp.status?.phase ?? 'Pending',
      rp.status?.time ?? (rp.spec.at ? `(${rp.spec.at})` : ''),
      rp.status?.seq === undefined ? '' : String(rp.status.seq),
      bytes(rp.status?.changedBytesSincePrevious),
      age(rp.metadata.creationTimestamp, now),
    ];
    if (wide) {
      const ready = condition(rp, 'Ready');
      row.push(rp.spec.selector ? 'yes' : '', rp.status?.markId ?? '', ready && ready.status !== 'True' ? `${ready.reason}: ${ready.message}` : '');
    }
    return row;
  });
  return table([head, ...rows]);
}
