/**
 * Rendered chart objects as data: parse helm's output, find every pod template and
 * container, and say what in them breaks the chart's security rules.
 */
import yaml from 'js-yaml';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

/**
 * Plain YAML, as the API server reads it. Not @kubernetes/client-node's loadAllYaml: that
 * maps known kinds onto its model classes, renaming fields (`from` becomes `_from`) and
 * dropping ones it does not know, so a misspelt field would pass unseen.
 */
export function parseObjects(yamlText: string): KubeObject[] {
  return (yaml.loadAll(yamlText) as (KubeObject | null)[]).filter((o): o is KubeObject => !!o && typeof o === 'object');
}

export function find(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind}${name ? ` ${name}` : ''} among ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'Pod']);

/** The pod spec of a workload (CronJob's two levels down, a Pod's own). */
export function podSpecOf(o: KubeObject): any | undefined {
  if (!WORKLOADS.has(o.kind)) return undefined;
  if (o.kind === 'Pod') return o.spec;
  if (o.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template?.spec;
  return o.spec?.template?.spec;
}

/**
 * Workloads allowed to run privileged (and as root): the CSI node plugin once it exists,
 * because it attaches NBD devices and mounts into the kubelet's directory. Empty today.
 */
export const PRIVILEGED_ALLOWED: ReadonlySet<string> = new Set<string>();

/**
 * Every way a container of a workload breaks the rules: privileged, root (or root
 * possible), privilege escalation, a writable root filesystem, capabilities kept, no
 * seccomp profile, no resource requests or limits. Empty means compliant.
 */
export function securityViolations(objects: KubeObject[]): string[] {
  const out: string[] = [];
  for (const o of objects) {
    const pod = podSpecOf(o);
    if (!pod) continue;
    const where = `${o.kind}/${o.metadata.name}`;
    const psc = pod.securityContext ?? {};
    if (pod.hostNetwork || pod.hostPID || pod.hostIPC) out.push(`${where}: host namespaces`);
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      const at = `${where} container ${c.name}`;
      const sc = c.securityContext ?? {};
      const privilegedOk = PRIVILEGED_ALLOWED.has(`${o.kind}/${o.metadata.name}`);
      if (sc.privileged === true && !privilegedOk) out.push(`${at}: privileged`);
      const nonRoot = sc.runAsNonRoot ?? psc.runAsNonRoot;
      const uid = sc.runAsUser ?? psc.runAsUser;
      if (!privilegedOk && (nonRoot !== true || uid === 0)) out.push(`${at}: may run as root (runAsNonRoot ${nonRoot}, runAsUser ${uid})`);
      if (sc.allowPrivilegeEscalation !== false && !privilegedOk) out.push(`${at}: allowPrivilegeEscalation not false`);
      if (sc.readOnlyRootFilesystem !== true) out.push(`${at}: root filesystem writable`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${at}: capabilities not dropped (drop: [ALL])`);
      if (sc.capabilities?.add?.length && !privilegedOk) out.push(`${at}: adds capabilities ${sc.capabilities.add.join(',')}`);
      const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
      if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${at}: seccompProfile ${seccomp ?? 'unset'}`);
      for (const kind of ['requests', 'limits'] as const) {
        for (const r of ['cpu', 'memory']) if (c.resources?.[kind]?.[r] === undefined) out.push(`${at}: no resources.${kind}.${r}`);
      }
    }
  }
  return out;
}

/** `kubectl auth can-i --list` as lines with whitespace collapsed, sorted (header first). */
export function normalizeCanIList(text: string): string[] {
  const lines = text
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l && !l.startsWith('#'));
  const header = lines.filter((l) => l.startsWith('Resources '));
  return [...header, ...lines.filter((l) => !l.startsWith('Resources ')).sort()];
}
