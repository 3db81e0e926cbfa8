import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { serverCredentials, type ServerTls } from '../security.js';
import { appendHandler, WriterRegistry } from './append-handler.js';
import { csiSnapshotMetadataHandlers } from './csi-snapshot-metadata.js';
import { loadProtos } from './proto.js';
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

export interface CollectorGrpcOptions {
  /** The collector store itself, or anything implementing the port (tests use fakes). */
  store: CollectorStore | StorePort;
  listen: { host: string; port: number } | { path: string };
  tls?: ServerTls;
  /** Must be true to serve without TLS. */
  allowPlaintext?: boolean;
  /** Create an unknown volume on its first Hello (default true). */
  createVolumes?: boolean;
  logger?: Logger;
}

export interface CollectorGrpcServer {
  /** "host:port" or "unix:/path", ready for a client target. */
  address: string;
  port: number | undefined;
  /** Whether a shipper currently streams to `volume`. */
  writerConnected(volume: string): boolean;
  close(): Promise<void>;
}

export async function startCollectorGrpc(opts: CollectorGrpcOptions): Promise<CollectorGrpcServer> {
  const logger = opts.logger ?? silentLogger;
  const creds = serverCredentials({ tls: opts.tls, allowPlaintext: opts.allowPlaintext });
  const store = opts.store instanceof CollectorStore ? storePort(opts.store) : opts.store;
  const { collector, snapshotMetadata } = loadProtos();
  const registry = new WriterRegistry();
  const server = new grpc.Server(SERVER_CHANNEL_OPTIONS);
  server.addService(collector.service, {
    Append: appendHandler({ store, registry, logger, createVolumes: opts.createVolumes ?? true }),
    ...queryHandlers({ store, registry, logger }),
  });
  server.addService(snapshotMetadata.service, csiSnapshotMetadataHandlers(store));

  const bindTo = 'path' in opts.listen ? `unix:${opts.listen.path}` : `${opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host}:${opts.listen.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(bindTo, creds, (err, p) =>
      err ? reject(new RewindError(ErrorCodes.IO, `cannot listen on ${bindTo}: ${err.message}; pick a free port or socket path`, { cause: err })) : resolve(p),
    ),
  );
  const address = 'path' in opts.listen ? bindTo : bindTo.replace(/:\d+$/, `:${port}`);
  logger.info('collector gRPC listening', { address, tls: !!opts.tls, mtls: !!opts.tls?.ca });

  let closed = false;
  return {
    address,
    port: 'path' in opts.listen ? undefined : port,
    writerConnected: (v) => registry.connected(v),
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
