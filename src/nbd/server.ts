import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { serveConnection } from './connection.js';
import { DEFAULT_MAX_CONNECTIONS, HANDSHAKE_TIMEOUT_MS } from './constants.js';
import type { ExportResolver } from './export-registry.js';
import { nbdMemory, type MemoryBudget } from './memory-budget.js';

export interface NbdTlsOptions {
  /** Key/cert (and optional CA for client certificates) as node:tls takes them. */
  secureContext: tls.SecureContextOptions;
  /** 'required' refuses exports until STARTTLS; 'optional' offers it. */
  mode?: 'optional' | 'required';
}

export interface NbdServerOptions {
  exports: ExportResolver;
  logger?: Logger;
  tls?: NbdTlsOptions;
  /** Connections beyond this are closed at accept. */
  maxConnections?: number;
  /** A client that has not finished negotiating by then is dropped. */
  handshakeTimeoutMs?: number;
  /**
   * Memory all connections may hold for requests at once (READ replies, WRITE payloads);
   * past it they wait. Default: the process-wide `nbdMemory`, shared by every server.
   */
  memory?: MemoryBudget;
  /** A WRITE payload that stops arriving for this long closes its connection (PAYLOAD_STALL_MS). */
  payloadStallMs?: number;
}

export type ListenOptions = { host: string; port: number } | { path: string };

export interface NbdServer {
  /** Resolves with the bound address (TCP) or the socket path. */
  listen(opts: ListenOptions): Promise<AddressInfo | string>;
  close(): Promise<void>;
  readonly connectionCount: number;
}

/**
 * NBD server over TCP or a unix socket. Exports come from the resolver; each export's
 * Backend is shared by all its connections (multi-conn). Backends are owned by the
 * caller and not closed here.
 */
export function createNbdServer(opts: NbdServerOptions): NbdServer {
  const sockets = new Set<net.Socket>();
  const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const tlsConf = opts.tls ? { mode: opts.tls.mode ?? 'optional', context: tls.createSecureContext(opts.tls.secureContext) } : undefined;
  const server = net.createServer((socket) => {
    if (sockets.size >= maxConnections) {
      opts.logger?.warn('nbd connection limit reached; refusing', { maxConnections });
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveConnection(socket, {
      exports: opts.exports,
      handshakeTimeoutMs,
      memory: opts.memory ?? nbdMemory,
      ...(opts.payloadStallMs !== undefined ? { payloadStallMs: opts.payloadStallMs } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(tlsConf ? { tls: tlsConf } : {}),
    }).catch((err: unknown) => {
      opts.logger?.error('nbd connection failed', { err });
      socket.destroy();
    });
  });
  server.on('error', (err) => opts.logger?.error('nbd server error', { err }));

  return {
    get connectionCount() {
      return sockets.size;
    },
    listen(l: ListenOptions): Promise<AddressInfo | string> {
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(new RewindError(ErrorCodes.UNAVAILABLE, `NBD server cannot listen on ${JSON.stringify(l)}: ${err.message}; pick a free port or remove the stale socket`, { cause: err }));
        server.once('error', onError);
        const done = (): void => {
          server.off('error', onError);
          const a = server.address();
          resolve(typeof a === 'string' ? a : (a as AddressInfo));
        };
        if ('path' in l) server.listen(l.path, done);
        else server.listen(l.port, l.host, done);
      });
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
    },
  };
}
