import path from 'node:path';
import { prepareRestoreDir } from '../collector/jobs/restore-path.js';
import { loadTlsSecretDir } from '../collector/security.js';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { parseDuration } from '../core/time-parse.js';
import { flag, need, str, toJson, type Command } from './args.js';
import { startCollectorService } from './collector-service.js';
import { parseListen } from './listen-address.js';
import { readSecretFile } from './secret-file.js';

export const collectorCommand: Command = {
  name: 'collector',
  summary: 'Run a collector on its own: history store + gRPC service + HTTP API, for remote nodes',
  usage: `rewind collector --data DIR --grpc ADDR --http ADDR [--admin-token-file FILE]
                       (--tls-dir DIR | --allow-plaintext) [--retention DURATION]
                       [--restore-dir DIR] [--plan-interval DURATION] [--scrub-every DURATION]

--data              the store's directory (created if missing): volumes/NAME/ per volume
--grpc              gRPC address for shippers, clients and the controller: HOST:PORT (port 0
                    picks one) or unix:/path.sock
--http              HTTP API and /metrics: HOST:PORT or unix:/path.sock. It asks for no
                    volume token: bind it to loopback or a network you trust
--admin-token-file  file holding the admin token (16+ characters). With it, RegisterVolume
                    and DeleteVolume need that token and volumes exist only once
                    registered (a Hello for another volume is refused). Without it, a
                    volume is created by its first Hello (or RegisterVolume) only from
                    this machine — a unix socket, or a loopback peer; a client from the
                    network may stream to a volume that exists, with its token, and
                    gets PERMISSION_DENIED for a new one. Serve remote nodes with a token
--tls-dir           gRPC TLS from a mounted secret: tls.crt, tls.key and, when present,
                    ca.crt (then clients need a certificate it signed: mutual TLS)
--allow-plaintext   serve gRPC without TLS (a trusted network or a unix socket)
--retention         any-point-in-time window (default 24h); marks are kept 7 times as long
--restore-dir       directory (created if missing) where restore jobs started over HTTP
                    (POST /v1/volumes/NAME/restores, the timeline page at /ui/) write image
                    files; a path outside it is refused. Without it, restore jobs are refused
--plan-interval     the planner's interval (default 60s): one first-update map and byte
                    count per volume per interval (docs/planner.md, rewind plan). Shorter
                    gives finer plans for short RPOs and costs more memory; changing it
                    rebuilds the series from the journal
--scrub-every       how often every volume's history is read back and each CRC checked
                    (default 24h; 0 turns it off); findings are logged and in
                    rewind_scrub_problems / rewind_scrub_errors_total (docs/metrics.md)

Prints one JSON line with the addresses ({"grpc": ADDR, "http": URL, ...}), then serves
until SIGINT/SIGTERM and exits 0.

Bounds: 256 Append streams at once (4 per volume), 32 MiB of batches held per stream and
512 MiB in all; past them a stream waits (HTTP/2 flow control), and a stream beyond the
counts is refused with RESOURCE_EXHAUSTED (the shipper retries).`,
  options: {
    data: { type: 'string' },
    grpc: { type: 'string' },
    http: { type: 'string' },
    'admin-token-file': { type: 'string' },
    'tls-dir': { type: 'string' },
    'allow-plaintext': { type: 'boolean' },
    retention: { type: 'string' },
    'plan-interval': { type: 'string' },
    'scrub-every': { type: 'string' },
    'restore-dir': { type: 'string' },
  },
  async run(args, io) {
    const data = path.resolve(need(args, 'data', this.name));
    const grpcListen = parseListen(need(args, 'grpc', this.name), '--grpc');
    const httpListen = parseListen(need(args, 'http', this.name), '--http');
    const tlsDir = str(args, 'tls-dir');
    const plaintext = flag(args, 'allow-plaintext');
    if ((tlsDir !== undefined) === plaintext) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `give exactly one of --tls-dir DIR and --allow-plaintext; see \`rewind ${this.name} --help\``);
    }
    const adminFile = str(args, 'admin-token-file');
    const adminToken = adminFile !== undefined ? await readSecretFile(adminFile, '--admin-token-file') : undefined;
    const retentionNs = parseDuration(str(args, 'retention') ?? '24h');
    const planInterval = str(args, 'plan-interval');
    const planIntervalNs = planInterval !== undefined ? parseDuration(planInterval) : undefined;
    // 0 would put no bound on an interval (and divide by zero); below 1 ms every entry is its own.
    if (planIntervalNs !== undefined && planIntervalNs < 1_000_000n) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--plan-interval must be at least 1ms (got "${planInterval}"); 60s suits RPOs of minutes, 1s RPOs of seconds`);
    }
    const scrubEvery = str(args, 'scrub-every');
    const scrubEveryMs = scrubEvery === undefined ? undefined : /^0+$/.test(scrubEvery) ? 0 : Number(parseDuration(scrubEvery) / 1_000_000n);
    if (scrubEveryMs !== undefined && scrubEveryMs !== 0 && scrubEveryMs < 60_000) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--scrub-every must be 0 (off) or at least 1m, not "${scrubEvery}": a scrub reads the whole history`);
    }
    // Checked (and created) before serving: a bad directory is a start-up error, not a failed job later.
    const restoreDirArg = str(args, 'restore-dir');
    const restoreDir = restoreDirArg !== undefined ? await prepareRestoreDir(path.resolve(restoreDirArg)) : undefined;
    const log = createLogger({ component: 'collector' });

    const collector = await startCollectorService({
      dataDir: data,
      grpcListen,
      ...(tlsDir !== undefined ? { tls: loadTlsSecretDir(tlsDir) } : { allowPlaintext: true }),
      ...(adminToken !== undefined ? { adminToken } : {}),
      retentionNs,
      ...(planIntervalNs !== undefined ? { planIntervalNs } : {}),
      ...(scrubEveryMs !== undefined ? { scrubEveryMs } : {}),
      logger: log,
    });
    let http;
    try {
      http = await collector.startHttp({ listen: httpListen, ...(restoreDir !== undefined ? { restoreDir } : {}) });
    } catch (err) {
      await collector.close();
      throw err;
    }
    const endpoints = { grpc: collector.grpc.address, http: http.url, ui: `${http.url}/ui/`, data, ...(restoreDir !== undefined ? { restoreDir } : {}), tls: tlsDir !== undefined, admin: adminToken !== undefined, pid: process.pid };
    io.out(toJson(endpoints, false) + '\n');
    log.info('collector serving', { ...endpoints, volumes: collector.store.listVolumes().length });

    const signal = await io.stopSignal;
    log.info('stopping', { signal });
    await collector.close();
    return 0;
  },
};
