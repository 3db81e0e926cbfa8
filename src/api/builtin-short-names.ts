/**
 * Short names a user may already type for something else. Built-in ones are what
 * `kubectl api-resources` lists on Kubernetes 1.34; the add-on ones come from storage and
 * platform projects often installed next to Rewind. A test keeps ours clear of both.
 */
export const BUILTIN_SHORT_NAMES: readonly string[] = [
  'cs', 'cm', 'ep', 'ev', 'limits', 'ns', 'no', 'pvc', 'pv', 'po', 'rc', 'quota', 'sa', 'svc',
  'crd', 'crds', 'ds', 'deploy', 'rs', 'sts', 'hpa', 'cj', 'csr', 'ing', 'netpol', 'pdb', 'pc',
  'psp', 'sc', 'vac', 'ip',
];

export const ADDON_SHORT_NAMES: readonly string[] = [
  // external-snapshotter, CBT
  'vs', 'vsc', 'vscs', 'vsclass', 'vsclasses', 'sms',
  // csi-addons VolumeReplication; Kasten / generic guesses at "restore point"
  'vr', 'vrc', 'rp', 'rps', 'restorepoint',
  // Longhorn
  'lhv', 'lhe', 'lhr', 'lhs', 'lhbv', 'lhb', 'lhn',
  // KubeVirt / CDI
  'vm', 'vms', 'vmi', 'vmis', 'dv', 'dvs',
  // cert-manager, Istio, Argo, Prometheus operator
  'cert', 'certs', 'cr', 'crs', 'gw', 'dr', 'se', 'app', 'apps', 'wf', 'prom', 'smon', 'pmon', 'am',
];
