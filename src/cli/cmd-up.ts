import crypto from 'node:crypto';
import fs from 'node:fs/promises';
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
import type { DurabilityMode } from '../ship/journal-filter.js';
import { openNodeVolume } from '../ship/node-volume.js';
import { flag, str, toJson, type Command } from './args.js';
import { startCollectorService } from './collector-service.js';
import { FLUSH_WAIT_HELP, FLUSH_WAIT_OPTIONS, flushWaitFromArgs } from './flush-wait-flags.js';
import { formatNbdUri, parseListen, removeStaleSocket, type ListenAddress } from './listen-address.js';

export const upCommand: Command = {
  name: 'up',
  summary: 'Run the whole data path on this machine: NBD server + journal + shipper + collector + HTTP API',
  usage: `rewind up [--data DIR] [--volume NAME] [--size SIZE] [--nbd ADDR] [--http ADDR]
                [--durability async|flush-sync|sync] [--retention DURATION] [--spool-max SIZE]
                [--full-policy block|dirty-bitmap] [--bandwidth BYTES_PER_SEC] [--coalesce]
                [--nbd-memory SIZE] [--flush-wait-timeout DURATION] [--flush-wait-policy async|fail]

--data         where everything lives (default ./rewind-data): volumes/NAME.img (the volume),
               spool/NAME/ (node journal), collector/ (history), endpoints.json (for the CLI)
--volume       volume name (default vol0)
--size         volume size when it is created (default 1G); an existing volume keeps its size
--nbd          NBD address (default 127.0.0.1:10809; port 0 picks one; unix:/path.sock)
--http         HTTP API and /metrics (default 127.0.0.1:8080; port 0 picks one)
--durability   flush-sync (default): FLUSH/FUA complete when the collector has the data;
               async: local spool only at FLUSH; sync: every write waits for the collector
--retention    any-point-in-time window (default 24h); older history is consolidated
--spool-max    node spool bound (default 8G); --full-policy what happens when it is full
--bandwidth    cap on shipping bytes/second (default: none); --coalesce drops overwritten
               blocks inside a shipping batch (less bandwidth, coarser history)
--nbd-memory   memory all NBD connections together may hold for requests (default 256M,
               at least 32M+64K); past it requests wait, they are never refused
${FLUSH_WAIT_HELP}

The collector listens on a unix socket inside --data (no TCP port, no admin token): it
creates a volume on the first Hello of a client on this machine only, i.e. this process's
own shipper (see \`rewind collector --help\`).

Prints one JSON line with the addresses, then serves until SIGINT/SIGTERM.
Then: rewind mark NAME · rewind restore --at TIME --out FILE · rewind diff · rewind status`,
  options: {
    data: { type: 'string' },
    volume: { type: 'string' },
    size: { type: 'string' },
    nbd: { type: 'string' },
    http: { type: 'string' },
    durability: { type: 'string' },
    retention: { type: 'string' },
    'spool-max': { type: 'string' },
    'full-policy': { type: 'string' },
    bandwidth: { type: 'string' },
    coalesce: { type: 'boolean' },
    'nbd-memory': { type: 'string' },
    ...FLUSH_WAIT_OPTIONS,
  },
  async run(args, io) {
    const data = path.resolve(str(args, 'data') ?? 'rewind-data');
    const volume = str(args, 'volume') ?? 'vol0';
    const mode = (str(args, 'durability') ?? 'flush-sync') as DurabilityMode;
    if (!['async', 'flush-sync', 'sync'].includes(mode)) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--durability must be async, flush-sync or sync, not "${mode}"`);
    }
    const flushWait = flushWaitFromArgs(args);
    const fullPolicy = str(args, 'full-policy') ?? 'block';
    if (fullPolicy !== 'block' && fullPolicy !== 'dirty-bitmap') {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--full-policy must be block or dirty-bitmap, not "${fullPolicy}"`);
    }
    const nbdListen = parseListen(str(args, 'nbd') ?? '127.0.0.1:10809');
    const httpListen = parseListen(str(args, 'http') ?? '127.0.0.1:8080');
    const retentionNs = parseDuration(str(args, 'retention') ?? '24h');
    const bandwidth = str(args, 'bandwidth') !== undefined ? Number(parseSize(str(args, 'bandwidth')!)) : undefined;
    const log = createLogger({ component: 'up' });
    for (const d of ['volumes', 'spool', 'collector']) await fs.mkdir(path.join(data, d), { recursive: true });

    // Collector first, so the shipper finds it at once. Shipper and collector share this
    // process: a unix socket inside the data dir, whose permissions are the data dir's, so
    // plaintext carries no network exposure. No admin token: the first Hello creates the
    // volume, which a collector without one allows only for local clients (a unix socket is).
    // One registry for both halves: this process is node and collector at once.
    const metrics = createRewindMetrics({ sides: ['node', 'collector'] });
    const collector = await startCollectorService({
      metrics,
      dataDir: path.join(data, 'collector'),
      grpcListen: { path: path.join(data, 'collector.sock') },
      allowPlaintext: true,
      retentionNs,
      logger: log,
    });
    const grpc = collector.grpc;

    const token = await volumeToken(data, volume);
    const sizeArg = str(args, 'size');
    const backingPath = path.join(data, 'volumes', `${volume}.img`);
    const exists = await fs.access(backingPath).then(() => true, () => false);
    const spoolMaxBytes = Number(parseSize(str(args, 'spool-max') ?? '8G'));
    const vol = await openNodeVolume({
      name: volume,
      backingPath,
      ...(exists ? {} : { size: parseSize(sizeArg ?? '1G') }),
      spoolDir: path.join(data, 'spool', volume),
      spoolMaxBytes,
      fullPolicy,
      mode,
      flushWait,
      collector: {
        target: { address: grpc.address, allowPlaintext: true },
        token,
        ...(bandwidth ? { bandwidthBytesPerSec: bandwidth } : {}),
        ...(flag(args, 'coalesce') ? { coalesce: true } : {}),
      },
      logger: log,
    });
    if (exists && sizeArg !== undefined && parseSize(sizeArg) !== vol.size) {
      log.warn('volume exists with another size; keeping it', { volume, size: vol.size, asked: sizeArg });
    }

    const node = instrumentNodeVolume(metrics, volume, vol, { spoolMaxBytes });
    const http = await collector.startHttp({
      listen: 'path' in httpListen ? { path: httpListen.path } : httpListen,
      localNodes: new Map([[volume, { mark: (name: string) => vol.mark(name) }]]),
      ready: () => vol.shipper?.status().connected ?? true,
    });

    if (str(args, 'nbd-memory') !== undefined) nbdMemory.setLimit(Number(parseSize(str(args, 'nbd-memory')!)));
    const nbd = createNbdServer({ exports: new ExportRegistry().add('', node.backend, { description: `rewind volume ${volume}` }), logger: log.child({ component: 'nbd' }) });
    if ('path' in nbdListen) await removeStaleSocket(nbdListen.path);
    const bound = await nbd.listen(nbdListen);
    const nbdAddr: ListenAddress = typeof bound === 'string' ? { path: bound } : { host: 'host' in nbdListen ? nbdListen.host : '127.0.0.1', port: (bound as AddressInfo).port };

    const endpoints = { nbd: formatNbdUri(nbdAddr), http: http.url, grpc: grpc.address, volume, data, pid: process.pid };
    await fs.writeFile(path.join(data, 'endpoints.json'), toJson(endpoints) + '\n');
    io.out(toJson(endpoints, false) + '\n');
    log.info('up', { ...endpoints, size: vol.size, durability: mode });

    const signal = await io.stopSignal;
    log.info('stopping', { signal });
    // Front to back: stop taking writes, let the node drain to the collector, then stop it.
    await nbd.close();
    await vol.close();
    node.stop();
    await collector.close();
    await fs.rm(path.join(data, 'endpoints.json'), { force: true });
    return 0;
  },
};

/** One random token per volume, kept beside the data: the shipper must present it on hello. */
async function volumeToken(data: string, volume: string): Promise<string> {
  const p = path.join(data, 'collector', `${volume}.token`);
  try {
    return (await fs.readFile(p, 'utf8')).trim();
  } catch {
    const t = crypto.randomBytes(24).toString('base64url');
    await fs.writeFile(p, t + '\n', { mode: 0o600 });
    return t;
  }
}
