import type * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { DeleteVolumeRequestMsg, DeleteVolumeResponseMsg, RegisterVolumeRequestMsg, RegisterVolumeResponseMsg } from '../../rpc/messages.js';
import type { WriterRegistry } from './append-handler.js';
import { checkAdmin, checkVolumeName, remoteCreateRefused } from './auth.js';
import { statusMsg, unary } from './query-handlers.js';
import type { StorePort } from './store-port.js';

export interface AdminDeps {
  store: StorePort;
  registry: WriterRegistry;
  logger: Logger;
  /** The collector's admin token; undefined when it runs without one (`rewind up`). */
  adminToken: string | undefined;
  /** Whether a call comes from this machine (unix socket or loopback). */
  isLocal: (call: grpc.ServerUnaryCall<unknown, unknown>) => boolean;
}

/** Per-volume tokens are secrets the controller generates: refuse what cannot be one. */
const MIN_TOKEN_CHARS = 16;
const MAX_TOKEN_CHARS = 4096;

/**
 * RegisterVolume and DeleteVolume: how the Kubernetes controller makes a ProtectedVolume's
 * volume exist (with the token it keeps in a Secret) and removes it. Both are idempotent,
 * so a controller that crashed mid-reconcile simply calls again.
 *
 * Without an admin token configured, RegisterVolume may still create a volume (for a
 * client on the collector's machine, as a first Hello can) or confirm one with its own
 * token, but rotating a token or deleting needs the admin token, which such a collector
 * does not have.
 */
export function adminHandlers(deps: AdminDeps): grpc.UntypedServiceImplementation {
  const { store, registry, logger } = deps;
  return {
    RegisterVolume: unary<RegisterVolumeRequestMsg, RegisterVolumeResponseMsg>(async (req, md, call) => {
      const what = `RegisterVolume of "${req.volume}"`;
      if (deps.adminToken !== undefined) checkAdmin(deps.adminToken, req.admin_token, md, what);
      checkVolumeName(req.volume);
      if (req.token.length < MIN_TOKEN_CHARS || req.token.length > MAX_TOKEN_CHARS) {
        throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what}: the volume token must be ${MIN_TOKEN_CHARS}–${MAX_TOKEN_CHARS} characters; generate a random one (e.g. 32 bytes, base64url)`);
      }
      const size = BigInt(req.size || '0');
      const existing = await store.volume(req.volume);
      if (!existing) {
        if (deps.adminToken === undefined && !deps.isLocal(call)) throw remoteCreateRefused(req.volume, what);
        if (size <= 0n) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${what}: the volume does not exist yet, so its size in bytes is needed to create it`);
        const v = await store.createVolume(req.volume, size, { token: req.token });
        logger.info('volume registered', { volume: v.name, size });
        return { volume: await statusMsg(v, registry.writerInfo(v.name)), created: true, token_rotated: false };
      }
      if (size !== 0n && size !== existing.size) {
        throw new RewindError(
          ErrorCodes.ALREADY_EXISTS,
          `${what}: the volume exists with size ${existing.size}, not ${size}; a resized volume needs a new volume name (or delete this one first)`,
          { details: { volume: req.volume, collectorSize: existing.size, requestedSize: size } },
        );
      }
      let rotated = false;
      if (!existing.checkToken(req.token)) {
        checkAdmin(deps.adminToken, req.admin_token, md, `${what} with a different volume token (rotation)`);
        await existing.setToken(req.token);
        // The stream was authenticated with the old token: it must come back with the new one.
        registry.displace(existing.name, new RewindError(ErrorCodes.UNAUTHENTICATED, `the token of volume "${existing.name}" was rotated; reconnect with the new token (the ProtectedVolume's token Secret)`));
        rotated = true;
        logger.info('volume token rotated', { volume: existing.name });
      }
      return { volume: await statusMsg(existing, registry.writerInfo(existing.name)), created: false, token_rotated: rotated };
    }),

    DeleteVolume: unary<DeleteVolumeRequestMsg, DeleteVolumeResponseMsg>(async (req, md) => {
      checkAdmin(deps.adminToken, req.admin_token, md, `DeleteVolume of "${req.volume}"`);
      checkVolumeName(req.volume);
      registry.displace(req.volume, new RewindError(ErrorCodes.NOT_FOUND, `volume "${req.volume}" was deleted from this collector; register it again to protect it`));
      const deleted = await store.deleteVolume(req.volume);
      if (deleted) logger.info('volume deleted', { volume: req.volume });
      return { deleted };
    }),
  };
}
