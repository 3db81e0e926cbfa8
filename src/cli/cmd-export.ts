import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../core/logger.js';
import { ExportRegistry } from '../nbd/export-registry.js';
import { FileBackend } from '../nbd/file-backend.js';
import { overlayFilter } from '../nbd/overlay-filter.js';
import { createNbdServer } from '../nbd/server.js';
import { flag, str, toJson, type Command } from './args.js';
import { writeSparse } from './cmd-client.js';
import { formatNbdUri, parseListen, removeStaleSocket, type ListenAddress } from './listen-address.js';
import { pointParam, POINT_HELP, POINT_OPTIONS, request, resolveServer, SERVER_HELP, SERVER_OPTIONS } from './server-client.js';

const enc = encodeURIComponent;

/**
 * The image is fetched once into a sparse temp file (one restore: cost tracks the volume
 * size, not the history) and served from there, so a client reading the export never
 * holds anything open in the collector.
 */
export const exportCommand: Command = {
  name: 'export',
  summary: 'Serve a volume as it was at an instant or mark over NBD (read-only, or with a throw-away overlay)',
  usage: `rewind export (--at TIME | --mark NAME | --seq N) [--listen ADDR] [--overlay] [--quiet] [--server URL] [--volume NAME]

${POINT_HELP}
--listen ADDR  NBD address (default 127.0.0.1:10810; port 0 picks one; unix:/path.sock)
--overlay      accept writes into a copy-on-write overlay that is deleted on exit (mount
               and repair a filesystem from the past without touching history)
--quiet        no progress lines on stderr while the image is fetched
${SERVER_HELP}

Prints one JSON line with the NBD URI once the image is ready; serves until SIGINT/SIGTERM.`,
  options: { ...SERVER_OPTIONS, ...POINT_OPTIONS, listen: { type: 'string' }, overlay: { type: 'boolean' }, quiet: { type: 'boolean' } },
  async run(args, io) {
    const point = pointParam(args, this.name);
    const listen: ListenAddress = parseListen(str(args, 'listen') ?? '127.0.0.1:10810');
    const t = await resolveServer(args);
    const log = createLogger({ component: 'export' });
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rewind-export-'));
    try {
      const image = path.join(tmp, 'image');
      const res = await request(t, 'GET', `/v1/volumes/${enc(t.volume)}/image?at=${enc(point)}`);
      await writeSparse(res, image, (done) => {
        if (!flag(args, 'quiet')) io.err(`export: fetched ${done} bytes\n`);
      });
      const base = await FileBackend.open(image, { readOnly: !flag(args, 'overlay') });
      const backend = flag(args, 'overlay') ? await overlayFilter({ dir: path.join(tmp, 'overlay') })(base) : base;
      const server = createNbdServer({ exports: new ExportRegistry().add('', backend, { description: `${t.volume} at ${point}` }), logger: log });
      if ('path' in listen) await removeStaleSocket(listen.path);
      const bound = await server.listen(listen);
      const addr: ListenAddress = typeof bound === 'string' ? { path: bound } : { host: 'host' in listen ? listen.host : '127.0.0.1', port: (bound as AddressInfo).port };
      io.out(toJson({ nbd: formatNbdUri(addr), volume: t.volume, point, overlay: flag(args, 'overlay') }, false) + '\n');
      await io.stopSignal;
      await server.close();
      await backend.close();
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
    return 0;
  },
};
