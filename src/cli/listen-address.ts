import { ErrorCodes, RewindError } from '../core/errors.js';

export type ListenAddress = { host: string; port: number } | { path: string };

/**
 * `--listen` forms: `127.0.0.1:10809`, `[::1]:10809`, `:10809` (loopback), `tcp://HOST:PORT`,
 * `unix:/path/to.sock`, or an absolute path. Loopback is the default host: exposing a
 * block device to the network is a decision the user states explicitly.
 */
export function parseListen(text: string, flagName = '--listen'): ListenAddress {
  const s = text.trim();
  if (s.startsWith('unix:')) return { path: s.slice(5).replace(/^\/\/(?=\/)/, '') };
  if (s.startsWith('/')) return { path: s };
  const t = s.replace(/^tcp:\/\//, '');
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(t);
  if (m) {
    const port = Number(m[3]);
    if (port <= 65535) return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
  }
  throw new RewindError(
    ErrorCodes.INVALID_ARGUMENT,
    `cannot read ${flagName} "${text}"; use HOST:PORT (127.0.0.1:10809, [::1]:0) or unix:/path/to.sock`,
  );
}

export function formatNbdUri(addr: ListenAddress, exportName = ''): string {
  if ('path' in addr) return `nbd+unix:///${exportName}?socket=${addr.path}`;
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return `nbd://${host}:${addr.port}/${exportName}`;
}

/**
 * A unix socket left behind by a process that was killed makes listen() fail with
 * EADDRINUSE. Remove it only if nothing answers on it, so a second live server is
 * never displaced.
 */
export async function removeStaleSocket(p: string): Promise<void> {
  const { default: fs } = await import('node:fs/promises');
  const { default: net } = await import('node:net');
  const st = await fs.lstat(p).catch(() => null);
  if (!st?.isSocket()) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(p, () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (!alive) await fs.rm(p, { force: true });
}
