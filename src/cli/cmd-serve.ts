import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { parseDuration, parseSize } from '../core/time-parse.js';
import { createRewindMetrics } from '../metrics/index.js';
import { instrumentNodeVolume } from '../metrics/node-metrics.js';
import { ExportRegistry } from '../nbd/export-registry.js';
import { nbdMemory } from '../nbd/memory-budget.js';
import { createNbdServer } from '../nbd/server.js';
import { clientTlsFromSecretDir, type CollectorTarget } from '../rpc/transport.js';
import type { DurabilityMode } from '../ship/journal-filter.js';
import { openNodeVolume, type NodeVolumeOptions } from '../ship/node-volume.js';
import { startControlHttp } from './control-http.js';
import { flag, need, str, toJson, type Command, type ParsedArgs } from './args.js';
import { formatNbdUri, parseListen, removeStaleSocket, type ListenAddress } from './listen-address.js';
import { readSecretFile } from './secret-file.js';
import { FLUSH_WAIT_HELP, FLUSH_WAIT_OPTIONS, flushWaitFromArgs } from './flush-wait-flags.js';
import type { FlushWaitOptions } from '../ship/flush-wait.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Serve a backing file or block device over NBD, journaling every write into a local spool',
  usage: `rewind serve --backing FILE --spool DIR [--size SIZE] [--listen ADDR] [--export NAME]
                   [--spool-max SIZE] [--full-policy block|dirty-bitmap] [--http ADDR] [--nbd-memory SIZE]
                   [--collector ADDR --volume NAME --token-file FILE
                    (--tls-dir DIR | --collector-plaintext) [--durability async|flush-sync|sync]
                    [--connect-timeout DURATION]
                    [--flush-wait-timeout DURATION] [--flush-wait-policy async|fail]]

--backing      file or block device holding the volume's data (created sparse if --size is given)
--size         volume size (e.g. 1G); needed when the backing file does not exist yet
--spool        directory of the journal spool (created if missing; reopened and recovered if not)
--listen       NBD address: HOST:PORT (default 127.0.0.1:10809; port 0 picks one) or unix:/path.sock
--export       export name (default "" — the default export)
--spool-max    bytes the spool may hold before the full policy applies (default 8G)
--full-policy  block: writers wait for space; dirty-bitmap: stop journaling, remember the
               changed extents in a persisted bitmap and resend them later (default block
               with --collector, dirty-bitmap without: with no collector nothing frees the
               spool, so block would stop every writer once it is full — it is refused).
               Without a collector, a full spool ends the local history: the node keeps
               serving, logs where the journal stopped (journal-stopped.json in the spool),
               and \`rewind journal replay\` refuses instants after it
--http         also serve the control API (POST /v1/marks, GET /v1/status, /healthz) and the
               node's Prometheus /metrics (docs/metrics.md) at HOST:PORT
--nbd-memory   memory all NBD connections together may hold for requests (READ replies not
               yet sent, WRITE payloads not yet written; default 256M, at least 32M+64K).
               Past it requests wait: the clients are slowed, never refused

Shipping to a collector (\`rewind collector\`), as the CSI node plugin runs a volume:
--collector    the collector's gRPC address: HOST:PORT or unix:/path.sock
--volume       the volume's name on the collector (registered there first when it runs
               with an admin token)
--token-file   file holding the volume's token (the ProtectedVolume's token Secret)
--tls-dir      client TLS from a mounted secret: ca.crt (the collector's CA) and, for
               mutual TLS, tls.crt/tls.key
--collector-plaintext  connect without TLS (a trusted network or a unix socket)
--durability   flush-sync (default with --collector): FLUSH/FUA complete once the
               collector has the data; sync: every write waits for it; async: FLUSH is
               local only (the default, and the only mode, without --collector)
--connect-timeout  how long to try reaching the collector at start (default 60s). Before
               serving, the node asks it what the volume holds: a new, empty device of a
               volume with history (a VolumeRestore's target) is filled from it first, and
               an in-place revert made while the volume was detached is pulled in. If the
               collector cannot be asked, start fails — except in async mode with a device
               that already holds data, which is served from the local spool
${FLUSH_WAIT_HELP}

On start it prints one JSON line with the addresses ({"nbd": URI, "http": URL}).
SIGINT/SIGTERM: stop accepting, finish in-flight requests, make spool and backing durable, exit 0.
A FLUSH makes the spool durable (it is the volume's write-ahead log); after an unclean stop the
next start replays the spool onto the backing file before serving.`,
  options: {
    backing: { type: 'string' },
    size: { type: 'string' },
    spool: { type: 'string' },
    listen: { type: 'string' },
    export: { type: 'string' },
    'spool-max': { type: 'string' },
    'full-policy': { type: 'string' },
    http: { type: 'string' },
    'nbd-memory': { type: 'string' },
    collector: { type: 'string' },
    volume: { type: 'string' },
    'token-file': { type: 'string' },
    'tls-dir': { type: 'string' },
    'collector-plaintext': { type: 'boolean' },
    durability: { type: 'string' },
    'connect-timeout': { type: 'string' },
    ...FLUSH_WAIT_OPTIONS,
  },
  async run(args, io) {
    const backingPath = need(args, 'backing', this.name);
    const spoolDir = need(args, 'spool', this.name);
    const listen: ListenAddress = parseListen(str(args, 'listen') ?? '127.0.0.1:10809');
    const exportName = str(args, 'export') ?? '';
    const size = str(args, 'size') !== undefined ? parseSize(str(args, 'size')!) : undefined;
    const remote = await collectorOptions(args, this.name);
    const fullPolicy = str(args, 'full-policy') ?? (remote ? 'block' : 'dirty-bitmap');
    if (fullPolicy !== 'block' && fullPolicy !== 'dirty-bitmap') {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--full-policy must be block or dirty-bitmap, not "${fullPolicy}"`);
    }
    if (fullPolicy === 'block' && !remote) {
      throw new RewindError(
        ErrorCodes.INVALID_ARGUMENT,
        '--full-policy block needs --collector: without one nothing ever frees the spool, and every writer would wait forever once --spool-max is reached; drop --full-policy (dirty-bitmap: the journal stops at the bound, the device keeps serving) or give --collector ADDR',
      );
    }
    const log = createLogger({ component: 'serve' });
    const spoolMaxBytes = Number(parseSize(str(args, 'spool-max') ?? '8G'));
    const vol = await openNodeVolume({
      name: remote?.volume ?? (exportName || 'default'),
      backingPath,
      ...(size !== undefined ? { size } : {}),
      spoolDir,
      spoolMaxBytes,
      fullPolicy,
      mode: remote?.mode ?? 'async',
      ...(remote ? { collector: remote.collector, connectTimeoutMs: remote.connectTimeoutMs, flushWait: remote.flushWait } : {}),
      logger: log,
    });
    const metrics = createRewindMetrics({ sides: ['node'] });
    const node = instrumentNodeVolume(metrics, vol.name, vol, { spoolMaxBytes });
    const exported = node.backend;
    const registry = new ExportRegistry().add(exportName, exported, { description: `rewind journaled volume ${path.basename(backingPath)}` });
    if (str(args, 'nbd-memory') !== undefined) nbdMemory.setLimit(Number(parseSize(str(args, 'nbd-memory')!)));
    const server = createNbdServer({ exports: registry, logger: log.child({ component: 'nbd' }) });
    if ('path' in listen) await removeStaleSocket(listen.path);
    const bound = await server.listen('path' in listen ? { path: listen.path } : listen);
    const nbdAddr: ListenAddress = typeof bound === 'string' ? { path: bound } : { host: listen && 'host' in listen ? listen.host : '127.0.0.1', port: (bound as AddressInfo).port };
    const http = str(args, 'http') !== undefined ? await startControlHttp(parseListen(str(args, 'http')!), vol, metrics) : undefined;

    io.out(toJson({ nbd: formatNbdUri(nbdAddr, exportName), ...(http ? { http: http.url } : {}), ...(remote ? { collector: remote.collector.target.address, volume: remote.volume, durability: remote.mode } : {}) }, false) + '\n');
    log.info('serving', { backing: backingPath, size: vol.size, spool: spoolDir, ...(remote ? { collector: remote.collector.target.address, volume: remote.volume, durability: remote.mode } : {}) });

    const signal = await io.stopSignal;
    log.info('stopping', { signal });
    await http?.close();
    await server.close();
    await vol.close();
    node.stop();
    return 0;
  },
};

/** The shipping flags, checked together; undefined without --collector (local journal only). */
async function collectorOptions(args: ParsedArgs, cmd: string): Promise<{ volume: string; mode: DurabilityMode; connectTimeoutMs: number; flushWait: FlushWaitOptions; collector: NonNullable<NodeVolumeOptions['collector']> } | undefined> {
  const address = str(args, 'collector');
  const mode = str(args, 'durability') ?? (address !== undefined ? 'flush-sync' : 'async');
  if (!['async', 'flush-sync', 'sync'].includes(mode)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--durability must be async, flush-sync or sync, not "${mode}"`);
  }
  if (address === undefined) {
    const stray = ['volume', 'token-file', 'tls-dir', 'collector-plaintext', 'connect-timeout', 'flush-wait-timeout', 'flush-wait-policy'].filter((k) => args.values[k] !== undefined);
    if (stray.length > 0) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${stray.map((k) => `--${k}`).join(', ')} only apply with --collector; see \`rewind ${cmd} --help\``);
    if (mode !== 'async') throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--durability ${mode} needs a collector to wait for; give --collector ADDR, or use async`);
    return undefined;
  }
  const at = parseListen(address, '--collector');
  const target: CollectorTarget = { address: 'path' in at ? `unix:${at.path}` : `${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}` };
  const tlsDir = str(args, 'tls-dir');
  if ((tlsDir !== undefined) === flag(args, 'collector-plaintext')) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `with --collector give exactly one of --tls-dir DIR and --collector-plaintext; see \`rewind ${cmd} --help\``);
  }
  if (tlsDir !== undefined) target.tls = clientTlsFromSecretDir(tlsDir);
  else target.allowPlaintext = true;
  const volume = need(args, 'volume', cmd);
  const token = await readSecretFile(need(args, 'token-file', cmd), '--token-file');
  const timeout = parseDuration(str(args, 'connect-timeout') ?? '60s');
  if (timeout <= 0n) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--connect-timeout must be a positive duration such as 30s or 2m`);
  const flushWait = flushWaitFromArgs(args);
  return { volume, mode: mode as DurabilityMode, connectTimeoutMs: Number(timeout / 1_000_000n), flushWait, collector: { target, token } };
}
