import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { ControlPlane } from './control-plane.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** kubectl apply -f crds/, then wait until every CRD is Established. */
export async function applyCrds(cp: ControlPlane): Promise<void> {
  const r = await cp.kubectl(['apply', '-f', path.join(ROOT, 'crds')]);
  expect(r.code, r.stderr).toBe(0);
  const w = await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=rewind']);
  expect(w.code, w.stderr).toBe(0);
}

/**
 * `kubectl get ARGS` as a table: headers and rows split on the column starts of the header
 * line (cells may hold spaces, e.g. dates), so an empty cell is seen as empty.
 */
export async function kubectlTable(cp: ControlPlane, args: string[], opts: { kubeconfig?: string; raw?: string[] } = {}): Promise<{ headers: string[]; rows: string[][] }> {
  const r = await cp.kubectl(opts.raw ?? ['get', ...args], opts);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.replace(/\n$/, '').split('\n');
  const head = lines[0]!;
  const starts: number[] = [];
  for (const m of head.matchAll(/\S+/g)) starts.push(m.index!);
  const cut = (line: string) => starts.map((s, i) => line.slice(s, i + 1 < starts.length ? starts[i + 1] : undefined).trim());
  return { headers: cut(head), rows: lines.slice(1).map(cut) };
}

/** Polls `probe` until it returns a value (not undefined), or fails with `what`. */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
