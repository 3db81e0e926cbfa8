import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../core/logger.js';
import { AsyncReader } from './async-reader.js';
import type { ExportResolver } from './export-registry.js';
import { runHandshake } from './handshake/machine.js';
import type { HandshakeIo, TerminalState, TlsMode } from './handshake/state.js';
import type { MemoryBudget } from './memory-budget.js';
import { Transmission } from './transmission.js';

export interface ConnectionOptions {
  exports: ExportResolver;
  logger?: Logger;
  tls?: { mode: Exclude<TlsMode, 'off'>; context: tls.SecureContext };
  handshakeTimeoutMs: number;
  /** Request memory shared with the process's other connections (memory-budget.ts). */
  memory?: MemoryBudget;
  /** See PAYLOAD_STALL_MS. */
  payloadStallMs?: number;
}

/**
 * One client from accept to close: handshake (promise-driven, bounded in time), then
 * hand the socket and any bytes already received to the Transmission phase.
 */
export async function serveConnection(raw: Socket, opts: ConnectionOptions): Promise<TerminalState> {
  raw.setNoDelay(true); // PEERS.md: qemu's client stalls at QD>1 without TCP_NODELAY
  let socket: Socket = raw;
  const reader = new AsyncReader();
  const onData = (d: Buffer): void => reader.push(d);
  const onGone = (): void => reader.close();
  socket.on('data', onData);
  socket.on('end', onGone);
  socket.on('close', onGone);
  socket.on('error', () => undefined); // 'close' follows; errors are per-connection noise
  const timer = setTimeout(() => {
    opts.logger?.info('nbd handshake timed out; closing', { ms: opts.handshakeTimeoutMs });
    reader.close();
    socket.destroy();
  }, opts.handshakeTimeoutMs);

  const io: HandshakeIo = {
    read: (n) => reader.read(n),
    skip: (n) => reader.skip(n),
    write: (b) => void socket.write(b),
  };
  if (opts.tls) {
    const context = opts.tls.context;
    io.startTls = () =>
      new Promise<void>((resolve, reject) => {
        socket.off('data', onData);
        const early = reader.queue.drainAll();
        const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context });
        for (const b of early.reverse()) socket.unshift(b);
        secure.once('secure', () => {
          socket = secure;
          secure.on('data', onData);
          secure.on('close', onGone);
          secure.on('error', () => undefined);
          resolve();
        });
        secure.once('error', reject);
      });
  }

  const end = await runHandshake({ io, exports: opts.exports, tls: opts.tls?.mode ?? 'off', ...(opts.logger ? { logger: opts.logger } : {}) });
  clearTimeout(timer);
  socket.off('data', onData);
  if (end.kind !== 'Transmission') {
    if (end.kind === 'Dead') opts.logger?.warn('nbd handshake failed; closing', { reason: end.reason });
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
    return end;
  }
  opts.logger?.debug('nbd transmission', { export: end.session.exportName, structured: end.session.structuredReplies });
  const t = new Transmission(socket, reader.queue, end.session, opts.logger, opts.memory, opts.payloadStallMs);
  // TLS sockets decrypt into their own buffers, so only plain ones read into ours.
  if (socket !== raw || !t.readIntoOwnBuffers()) socket.on('data', (d: Buffer) => t.push(d));
  socket.on('close', () => t.close());
  t.pump();
  return end;
}
