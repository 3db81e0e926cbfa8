import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { parseSize } from '../core/time-parse.js';
import { ExportRegistry } from '../nbd/export-registry.js';
import { createNbdServer } from '../nbd/server.js';
import { openNodeVolume } from '../ship/node-volume.js';
import { startControlHttp } from './control-http.js';
import { need, str, toJson, type Command } from './args.js';
import { formatNbdUri, parseListen, removeStaleSocket, type ListenAddress } from './listen-address.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Serve a backing file or block device over NBD, journaling every write into a local spool',
  usage: `rewind serve --backing FILE --spool DIR [--size SIZE] [--listen ADDR] [--export NAME]
                   [--spool-max SIZE] [--full-policy block|dirty-bitmap] [--http ADDR]

--backing      file or block device holding the volume's data (created sparse if --size is given)
--size         volume size (e.g. 1G); needed when the backing file does not exist yet
--spool        directory of the journal spool (created if missing; reopened and recovered if not)
--listen       NBD address: HOST:PORT (default 127.0.0.1:10809; port 0 picks one) or unix:/path.sock
--export       export name (default "" — the default export)
--spool-max    bytes the spool may hold before the full policy applies (default 8G)
--full-policy  block: writers wait for space; dirty-bitmap: stop journaling, remember the
               changed extents in a persisted bitmap and resend them later (default block)
--http         also serve the control API (POST /v1/marks, GET /v1/status, /healthz) at HOST:PORT

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
  },
  async run(args, io) {
    const backingPath = need(args, 'backing', this.name);
    const spoolDir = need(args, 'spool', this.name);
    const listen: ListenAddress = parseListen(str(args, 'listen') ?? '127.0.0.1:10809');
    const exportName = str(args, 'export') ?? '';
    const size = str(args, 'size') !== undefined ? parseSize(str(args, 'size')!) : undefined;
    const fullPolicy = str(args, 'full-policy') ?? 'block';
    if (fullPolicy !== 'block' && fullPolicy !== 'dirty-bitmap') {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--full-policy must be block or dirty-bitmap, not "${fullPolicy}"`);
    }
    const log = createLogger({ component: 'serve' });
    const vol = await openNodeVolume({
      name: exportName || 'default',
      backingPath,
      ...(size !== undefined ? { size } : {}),
      spoolDir,
      spoolMaxBytes: Number(parseSize(str(args, 'spool-max') ?? '8G')),
      fullPolicy,
      mode: 'async',
      logger: log,
    });
    const exported = vol.backend;
    const registry = new ExportRegistry().add(exportName, exported, { description: `rewind journaled volume ${path.basename(backingPath)}` });
    const server = createNbdServer({ exports: registry, logger: log.child({ component: 'nbd' }) });
    if ('path' in listen) await removeStaleSocket(listen.path);
    const bound = await server.listen('path' in listen ? { path: listen.path } : listen);
    const nbdAddr: ListenAddress = typeof bound === 'string' ? { path: bound } : { host: listen && 'host' in listen ? listen.host : '127.0.0.1', port: (bound as AddressInfo).port };
    const http = str(args, 'http') !== undefined ? await startControlHttp(parseListen(str(args, 'http')!), vol) : undefined;

    io.out(toJson({ nbd: formatNbdUri(nbdAddr, exportName), ...(http ? { http: http.url } : {}) }, false) + '\n');
    log.info('serving', { backing: backingPath, size: vol.size, spool: spoolDir });

    const signal = await io.stopSignal;
    log.info('stopping', { signal });
    await http?.close();
    await server.close();
    await vol.close();
    return 0;
  },
};
