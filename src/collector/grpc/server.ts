import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { serverCredentials, type ServerTls } from '../security.js';
import { adminHandlers } from './admin-handlers.js';
import { appendHandler, WriterRegistry } from './append-handler.js';
import { AppendAdmission, type AppendLimits } from './append-limits.js';
import { isLoopbackPeer } from './auth.js';
import { csiSnapshotMetadataHandlers } from './csi-snapshot-metadata.js';
import { loadProtos } from '../../rpc/proto.js';
import { queryHandlers } from './query-handlers.js';
import { CollectorStore } from '../store/index.js';
import { storePort } from './store-adapter.js';
import type { StorePort } from './store-port.js';

/** One record may carry a 32 MiB NBD write; batches add a little on top. */
export const MAX_MESSAGE_BYTES = 80 * 1024 * 1024;

/**
 * Keepalive: a shipper whose network vanished is noticed within ~15 s, which bounds how
 * long a dead stream holds its volume (a reconnecting shipper displaces it anyway).
 */
export const SERVER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/**
 * grpc-js leaves the server's HTTP/2 receive windows at the protocol default (64 KiB) and
 * has no option for them, so a 1 MiB batch needed ~16 window updates on its way in and
 * the Append stream was latency-bound (bench/collector.ts, ingest through the Shipper:
 * transport ceiling 130–170 MiB/s before, 214 MiB/s after in one run on a busy machine).
 * We reach into two of its internals, each guarded so a grpc-js that renames them only
 * loses the speed-up: the settings every new HTTP/2 server is created with, and the
 * servers themselves once bound (for the connection-level window).
 */
const RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;
type GrpcServerInternals = { commonServerOptions?: { settings?: http2.Settings }; http2Servers?: Map<http2.Http2Server, unknown> };

function widenReceiveWindows(server: grpc.Server): void {
  const common = (server as unknown as GrpcServerInternals).commonServerOptions;
  if (common) common.settings = { ...common.settings, initialWindowSize: RECEIVE_WINDOW_BYTES };
}

function http2ServersOf(server: grpc.Server): http2.Http2Server[] {
  const m = (server as unknown as GrpcServerInternals).http2Servers;
  return m instanceof Map ? [...m.keys()] : [];
}

export interface CollectorGrpcOptions {
  /** The collector store itself, or anything implementing the port (tests use fakes). */
  store: CollectorStore | StorePort;
  listen: { host: string; port: number } | { path: string };
  tls?: ServerTls;
  /** Must be true to serve without TLS. */
  allowPlaintext?: boolean;
  /**
   * The admin token RegisterVolume and DeleteVolume must present. When set, volumes are
   * created only by RegisterVolume (createVolumes defaults to false). Without it, volumes
   * are created by their first Hello or by RegisterVolume, but only for clients on this
   * machine (a unix socket listener, or a loopback peer): a client from the network
   * cannot make a volume appear with a token of its choosing.
   */
  adminToken?: string;
  /** Create an unknown volume on its first Hello (default: true without an admin token; local clients only). */
  createVolumes?: boolean;
  /** Bounds on Append streams and the bytes they hold (append-limits.ts; defaults there). */
  appendLimits?: Partial<AppendLimits>;
  logger?: Logger;
}

export interface CollectorGrpcServer {
  /** "host:port" or "unix:/path", ready for a client target. */
  address: string;
  port: number | undefined;
  /** Whether a shipper currently streams to `volume`. */
  writerConnected(volume: string): boolean;
  /** Append streams open and the batch bytes they hold now and at most (tests, metrics). */
  appendMemory(): { streams: number; held: number; peak: number };
  close(): Promise<void>;
}

export async function startCollectorGrpc(opts: CollectorGrpcOptions): Promise<CollectorGrpcServer> {
  const logger = opts.logger ?? silentLogger;
  if (opts.adminToken !== undefined && opts.adminToken.length < 16) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'the collector admin token must be at least 16 characters; generate a random one (e.g. openssl rand -base64 32)');
  }
  const creds = serverCredentials({ tls: opts.tls, allowPlaintext: opts.allowPlaintext });
  const store = opts.store instanceof CollectorStore ? storePort(opts.store) : opts.store;
  const { collector, snapshotMetadata } = loadProtos();
  const registry = new WriterRegistry();
  const admission = new AppendAdmission(opts.appendLimits);
  // Everything that reaches a unix socket is on this machine (and passed its permissions).
  const onUnixSocket = 'path' in opts.listen;
  const isLocal = (call: { getPeer(): string }): boolean => onUnixSocket || isLoopbackPeer(call.getPeer());
  const server = new grpc.Server(SERVER_CHANNEL_OPTIONS);
  widenReceiveWindows(server);
  server.addService(collector.service, {
    Append: appendHandler({ store, registry, logger, admission, isLocal, createVolumes: opts.createVolumes ?? opts.adminToken === undefined }),
    ...queryHandlers({ store, registry, logger }),
    ...adminHandlers({ store, registry, logger, isLocal, adminToken: opts.adminToken }),
  });
  server.addService(snapshotMetadata.service, csiSnapshotMetadataHandlers(store));

  const bindTo = 'path' in opts.listen ? `unix:${opts.listen.path}` : `${opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host}:${opts.listen.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(bindTo, creds, (err, p) =>
      err ? reject(new RewindError(ErrorCodes.IO, `cannot listen on ${bindTo}: ${err.message}; pick a free port or socket path`, { cause: err })) : resolve(p),
    ),
  );
  for (const h2 of http2ServersOf(server)) h2.on('session', (session: http2.ServerHttp2Session) => session.setLocalWindowSize(RECEIVE_WINDOW_BYTES));
  const address = 'path' in opts.listen ? bindTo : bindTo.replace(/:\d+$/, `:${port}`);
  logger.info('collector gRPC listening', { address, tls: !!opts.tls, mtls: !!opts.tls?.ca });

  let closed = false;
  return {
    address,
    port: 'path' in opts.listen ? undefined : port,
    writerConnected: (v) => registry.connected(v),
    appendMemory: () => ({ streams: admission.streams, held: admission.held, peak: admission.peak }),
    async close() {
      if (closed) return;
      closed = true;
      registry.displaceAll();
      // Give open streams a moment to send their final status, then cut whatever is left.
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}
