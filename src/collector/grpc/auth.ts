import net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import { tokensEqual } from './store-adapter.js';
import type { StorePort, VolumePort } from './store-port.js';

/** Volume names end up in paths and Kubernetes names: DNS-label-ish, bounded. */
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export function checkVolumeName(name: string): void {
  if (!VOLUME_NAME.test(name)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `volume name "${name}" is invalid; use 1-253 characters of [A-Za-z0-9._-], starting alphanumeric`);
  }
}

/** The token from the request body, else from `authorization: Bearer <token>` metadata. */
export function tokenOf(bodyToken: string | undefined, metadata: grpc.Metadata | undefined): string {
  if (bodyToken) return bodyToken;
  const h = metadata?.get('authorization')?.[0];
  if (typeof h === 'string' && h.startsWith('Bearer ')) return h.slice(7);
  return '';
}

export function unauthenticated(volume: string): RewindError {
  return new RewindError(
    ErrorCodes.UNAUTHENTICATED,
    `token for volume "${volume}" was refused; the shipper must present the token the volume was created with (check the ProtectedVolume's token secret)`,
    { details: { volume } },
  );
}

/**
 * Administrative calls carry the collector's admin token (body field, else bearer
 * metadata). A collector started without one refuses them all but registration's
 * create-or-confirm (see admin-handlers.ts): nothing else can prove the caller is admin.
 */
export function checkAdmin(configured: string | undefined, bodyToken: string | undefined, metadata: grpc.Metadata | undefined, what: string): void {
  const given = tokenOf(bodyToken, metadata);
  if (configured === undefined) {
    throw new RewindError(
      ErrorCodes.ADMIN_UNAUTHENTICATED,
      `${what} needs the collector's admin token, and this collector runs without one; start it with --admin-token-file FILE and present that token`,
    );
  }
  if (!given || !tokensEqual(given, configured)) {
    throw new RewindError(
      ErrorCodes.ADMIN_UNAUTHENTICATED,
      `${what}: the admin token ${given ? 'was refused' : 'is missing'}; present the token in the collector's --admin-token-file (the controller's collector admin Secret)`,
    );
  }
}

/**
 * Whether a call's peer (grpc-js getPeer(): "127.0.0.1:5000", "::1:5000", "[::1]:5000",
 * "unknown") is this machine's loopback. An address we cannot read is not local.
 */
export function isLoopbackPeer(peer: string): boolean {
  let host = peer;
  const port = /:\d+$/.exec(host);
  if (port) host = host.slice(0, port.index);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.startsWith('::ffff:') && net.isIPv4(host.slice(7))) host = host.slice(7);
  if (net.isIPv4(host)) return host.startsWith('127.');
  return net.isIPv6(host) && (host === '::1' || host === '0:0:0:0:0:0:0:1');
}

/**
 * A collector without an admin token creates volumes (first Hello, RegisterVolume) only
 * for clients on its own machine: there nobody else can prove who they are, and a client
 * from the network with a token of its choosing would otherwise make volumes appear.
 */
export function remoteCreateRefused(volume: string, what: string): RewindError {
  return new RewindError(
    ErrorCodes.PERMISSION_DENIED,
    `${what}: volume "${volume}" does not exist, and this collector runs without an admin token, so it creates volumes only for clients on its own machine (unix socket or loopback); start it with --admin-token-file FILE and create the volume with RegisterVolume (the controller does, for a ProtectedVolume), or create it from the collector's machine`,
    { details: { volume } },
  );
}

/** Look up an existing volume and check its token; NOT_FOUND / UNAUTHENTICATED otherwise. */
export async function authorizedVolume(store: StorePort, name: string, token: string): Promise<VolumePort> {
  checkVolumeName(name);
  const vol = await store.volume(name);
  if (!vol) throw new RewindError(ErrorCodes.NOT_FOUND, `volume "${name}" is not known to this collector; check the name or start its shipper first`, { details: { volume: name } });
  if (!token || !vol.checkToken(token)) throw unauthenticated(name);
  return vol;
}
