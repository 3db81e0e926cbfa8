import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { loadProtos } from './proto.js';

/** Same bound as the server: one record can carry a 32 MiB NBD write. */
export const CLIENT_MAX_MESSAGE_BYTES = 80 * 1024 * 1024;

export interface ClientTls {
  /** PEM CA bundle that the collector's certificate must chain to. */
  ca: Buffer | string;
  /** Client certificate and key for mutual TLS. */
  cert?: Buffer | string;
  key?: Buffer | string;
  /** Override the name checked against the collector's certificate (SNI / SAN). */
  serverName?: string;
}

export interface CollectorTarget {
  /** "host:port" or "unix:/path". */
  address: string;
  tls?: ClientTls;
  /** Must be true to connect without TLS (mirrors the collector's allowPlaintext). */
  allowPlaintext?: boolean;
}

const buf = (b: Buffer | string | undefined): Buffer | null => (b === undefined ? null : typeof b === 'string' ? Buffer.from(b) : b);

export function clientCredentials(target: CollectorTarget): grpc.ChannelCredentials {
  if (target.tls) {
    if ((target.tls.cert === undefined) !== (target.tls.key === undefined)) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'a client certificate needs its key and a key its certificate; configure both (or neither)');
    }
    return grpc.credentials.createSsl(buf(target.tls.ca), buf(target.tls.key), buf(target.tls.cert));
  }
  if (target.allowPlaintext === true) return grpc.credentials.createInsecure();
  throw new RewindError(
    ErrorCodes.INVALID_ARGUMENT,
    `no TLS configured for collector ${target.address} and plaintext not allowed; give the CA (and client certificate) or set allowPlaintext for a trusted network`,
  );
}

export type CollectorClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** A client of rewind.v1alpha1.Collector with keepalive tuned to notice dead links fast. */
export function collectorClient(target: CollectorTarget): CollectorClient {
  const { collector } = loadProtos();
  const options: grpc.ChannelOptions = {
    'grpc.max_receive_message_length': CLIENT_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': CLIENT_MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Reconnect pacing is the shipper's own back-off; keep the channel's short.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1_000,
    // The shipper resends from the collector's Welcome itself; grpc-js's own retry layer
    // would only buffer every outgoing batch a second time.
    'grpc.enable_retries': 0,
  };
  if (target.tls?.serverName) options['grpc.ssl_target_name_override'] = target.tls.serverName;
  return new collector(target.address, clientCredentials(target), options) as unknown as CollectorClient;
}

/**
 * grpc-js reports a refused TLS handshake as UNAVAILABLE "No connection established",
 * which reads like a network outage. When the detail shows a TLS alert, say what it is.
 */
export function explainTransportError(err: RewindError, target: CollectorTarget): RewindError {
  if (err.code !== ErrorCodes.UNAVAILABLE || !/certificate|SSL routines|tlsv1|handshake|unknown ca/i.test(err.message)) return err;
  const why = /certificate required/i.test(err.message)
    ? 'the collector requires a client certificate and none was presented'
    : 'the TLS handshake failed (untrusted or mismatched certificate)';
  return new RewindError(
    ErrorCodes.UNAUTHENTICATED,
    `collector ${target.address} refused the connection: ${why}; configure the shipper's client certificate and key (signed by the collector's CA) and the CA that signed the collector's certificate`,
    { cause: err },
  );
}

/**
 * Client TLS from a mounted Kubernetes TLS secret (cert-manager layout): ca.crt is the
 * CA the collector's certificate must chain to; tls.crt/tls.key, when present, are this
 * shipper's client certificate for mutual TLS.
 */
export function clientTlsFromSecretDir(dir: string): ClientTls {
  const read = (name: string, required: boolean): Buffer | undefined => {
    try {
      return readFileSync(path.join(dir, name));
    } catch (err) {
      if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `cannot read ${name} from the TLS secret mounted at ${dir}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { ca: read('ca.crt', true)!, cert: read('tls.crt', false), key: read('tls.key', false) };
}
