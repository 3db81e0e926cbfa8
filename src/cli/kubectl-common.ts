/**
 * What the kubectl plugins share: kubectl's own flags (--kubeconfig, --context, -n, -o),
 * loading the kubeconfig the way kubectl does, printing objects, and turning failures into
 * a message and an exit status (2: bad usage, 1: anything else).
 */
import { ApiException, dumpYaml, KubeConfig } from '@kubernetes/client-node';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCodes, isRewindError, RewindError } from '../core/errors.js';
import { GROUP } from '../api/index.js';

export interface PluginIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /**
   * The cluster to talk to. Absent: loaded from --kubeconfig / KUBECONFIG / ~/.kube/config,
   * like kubectl. Tests against a real API server pass one in.
   */
  kubeConfig?: KubeConfig;
  /** ns since the epoch; for "90s ago" and for tests. */
  nowNs?: () => bigint;
  /** Waits between polls (restore --wait); tests pass a fast one. */
  sleep?: (ms: number) => Promise<void>;
}

export function defaultIo(io: PluginIo | undefined): Required<Omit<PluginIo, 'kubeConfig'>> & Pick<PluginIo, 'kubeConfig'> {
  return {
    out: io?.out ?? ((s) => void process.stdout.write(s)),
    err: io?.err ?? ((s) => void process.stderr.write(s)),
    kubeConfig: io?.kubeConfig,
    nowNs: io?.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n),
    sleep: io?.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
  };
}

/** kubectl's flags, as kubectl spells them. */
export const KUBECTL_OPTIONS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export const KUBECTL_FLAGS_HELP = `Kubectl flags:
  --kubeconfig FILE    kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config)
  --context NAME       kubeconfig context to use (default: the current one)
  -n, --namespace NS   namespace (default: the context's namespace, then "default")`;

export function usageError(message: string, cmd: string): RewindError {
  return new RewindError(ErrorCodes.INVALID_ARGUMENT, `${message}; see \`${cmd} --help\``);
}

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parsePluginArgs(argv: string[], options: NonNullable<ParseArgsConfig['options']>, cmd: string): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (err) {
    throw usageError((err as Error).message, cmd);
  }
}

export function strOpt(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** -o values a command accepts; undefined = the default (human) form. */
export function outputOpt<T extends string>(p: Parsed, allowed: readonly T[], cmd: string): T | undefined {
  const o = strOpt(p, 'output');
  if (o === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(o)) throw usageError(`-o must be one of ${allowed.join(', ')}, not "${o}"`, cmd);
  return o as T;
}

/** The kubeconfig, with --context applied. Throws when the file or context is not there. */
export function loadKubeConfig(p: Parsed, injected?: KubeConfig): KubeConfig {
  let kc = injected;
  if (!kc) {
    kc = new KubeConfig();
    const file = strOpt(p, 'kubeconfig');
    try {
      if (file) kc.loadFromFile(file);
      else if (!process.env.KUBECONFIG && !fs.existsSync(path.join(os.homedir(), '.kube', 'config')) && !process.env.KUBERNETES_SERVICE_HOST) {
        // client-node would fall back to http://localhost:8080 and fail with a TLS message.
        throw new Error('no kubeconfig found (no $KUBECONFIG, no ~/.kube/config, not in a pod)');
      } else kc.loadFromDefault();
    } catch (err) {
      throw new RewindError(ErrorCodes.NOT_FOUND, `cannot load kubeconfig${file ? ` ${file}` : ''}: ${(err as Error).message}; pass --kubeconfig FILE or set KUBECONFIG`, { cause: err });
    }
  }
  const context = strOpt(p, 'context');
  if (context !== undefined) {
    if (!kc.getContexts().some((c) => c.name === context)) {
      throw new RewindError(ErrorCodes.NOT_FOUND, `context "${context}" is not in the kubeconfig; \`kubectl config get-contexts\` lists them`);
    }
    kc.setCurrentContext(context);
  }
  return kc;
}

/** -n, else the context's namespace, else "default" — kubectl's order. */
export function namespaceOf(p: Parsed, kc: KubeConfig | undefined): string {
  return strOpt(p, 'namespace') || (kc && kc.getContextObject(kc.getCurrentContext())?.namespace) || 'default';
}

/** `restorepoint.cdp.rewind.dev/NAME`, the form kubectl's `-o name` and messages use. */
export function qualifiedName(obj: { kind: string; metadata?: { name?: string } }): string {
  return `${obj.kind.toLowerCase()}.${GROUP}/${obj.metadata?.name ?? ''}`;
}

export function printObject(io: Pick<PluginIo, 'out'>, obj: object & { kind: string }, output: 'yaml' | 'json' | 'name'): void {
  if (output === 'json') io.out(`${JSON.stringify(obj, null, 4)}\n`);
  else if (output === 'yaml') io.out(dumpYaml(obj, { lineWidth: -1 }));
  else io.out(`${qualifiedName(obj)}\n`);
}

/** Columns padded like kubectl's tables (three spaces between). */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n') + '\n';
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n}B` : `${v.toFixed(1)}${units[u]}`;
}

/** "5s", "3m", "2h", "4d": kubectl's Age column. */
export function age(iso: string | Date | undefined, nowMs: number): string {
  if (!iso) return '';
  const s = Math.max(0, Math.floor((nowMs - new Date(iso).getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** The API server's own message for a failed call (its Status body), else the error's. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    let body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        /* not a Status: keep the text */
      }
    }
    const msg = (body as { message?: string } | undefined)?.message ?? (typeof body === 'string' && body ? body : err.message);
    return `${msg} (HTTP ${err.code})`;
  }
  const e = err as Error & { code?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH') {
    return `cannot reach the API server (${code}): check --kubeconfig / --context, or that the cluster is up`;
  }
  return e?.message ?? String(err);
}

/** Runs a plugin body: usage errors exit 2, API and other failures exit 1, with one clear line. */
export async function runPlugin(prog: string, io: Pick<PluginIo, 'err'>, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (isRewindError(err)) {
      io.err(`error: ${prog}: ${err.message}\n`);
      return err.code === ErrorCodes.INVALID_ARGUMENT ? 2 : 1;
    }
    io.err(`error: ${prog}: ${apiMessage(err)}\n`);
    return 1;
  }
}
