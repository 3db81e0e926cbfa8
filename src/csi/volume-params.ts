import { parseSize } from '../core/time-parse.js';
import { parseListen } from '../cli/listen-address.js';
import { invalidArgument } from './csi-error.js';

/**
 * StorageClass parameters this driver reads. CreateVolume checks them and copies them
 * into the volume's context, which the CO hands back at NodeStage: the node plugin never
 * needs the controller's state to bring a volume up.
 */
export const PARAMS = {
  /** The collector's gRPC address (HOST:PORT or unix:/path.sock): ship to it from the first write. */
  collector: 'collector',
  /** "true": talk to the collector without TLS (a unix socket, a trusted network). Otherwise TLS from the node-stage secret. */
  collectorPlaintext: 'collectorPlaintext',
  /** async | flush-sync | sync (DESIGN.md §3 "Durability modes"); flush-sync by default with a collector. */
  durability: 'durability',
  /** Bytes the node's spool may hold before the full policy applies (e.g. 1G). */
  spoolMax: 'spoolMax',
  /** block | dirty-bitmap: what a full spool does (`rewind serve --full-policy`). */
  fullPolicy: 'fullPolicy',
} as const;

/** Volume-context keys the driver adds itself. */
export const CTX_SIZE = 'cdp.rewind.dev/size';
export const CTX_NODE = 'cdp.rewind.dev/node';

/** Keys of the node-stage secret (csi.storage.k8s.io/node-stage-secret-name): the ProtectedVolume token Secret's, plus TLS. */
export const SECRET_TOKEN = 'token';
export const SECRET_TLS_FILES = ['ca.crt', 'tls.crt', 'tls.key'] as const;

const KNOWN = new Set<string>(Object.values(PARAMS));

/** Check StorageClass parameters; returns those to carry in the volume context. */
export function checkParameters(params: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    // The external-provisioner's own keys (--extra-create-metadata, secrets, fstype) are not ours.
    if (k.startsWith('csi.storage.k8s.io/')) continue;
    if (!KNOWN.has(k)) unknown.push(k);
    else out[k] = v;
  }
  if (unknown.length > 0) {
    throw invalidArgument(`unknown StorageClass parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; known: ${[...KNOWN].join(', ')}`);
  }
  const c = out[PARAMS.collector];
  if (c !== undefined) {
    try {
      parseListen(c, `parameter ${PARAMS.collector}`);
    } catch (e) {
      throw invalidArgument((e as Error).message);
    }
  }
  const plain = out[PARAMS.collectorPlaintext];
  if (plain !== undefined && plain !== 'true' && plain !== 'false') throw invalidArgument(`parameter ${PARAMS.collectorPlaintext} must be "true" or "false", not "${plain}"`);
  const d = out[PARAMS.durability];
  if (d !== undefined && !['async', 'flush-sync', 'sync'].includes(d)) throw invalidArgument(`parameter ${PARAMS.durability} must be async, flush-sync or sync, not "${d}"`);
  if (d !== undefined && d !== 'async' && c === undefined) throw invalidArgument(`parameter ${PARAMS.durability}=${d} waits for a collector; name one in parameter ${PARAMS.collector}, or use async`);
  const f = out[PARAMS.fullPolicy];
  if (f !== undefined && f !== 'block' && f !== 'dirty-bitmap') throw invalidArgument(`parameter ${PARAMS.fullPolicy} must be block or dirty-bitmap, not "${f}"`);
  const s = out[PARAMS.spoolMax];
  if (s !== undefined) {
    try {
      parseSize(s);
    } catch {
      throw invalidArgument(`parameter ${PARAMS.spoolMax} must be a size such as 512M or 4G, not "${s}"`);
    }
  }
  return out;
}
