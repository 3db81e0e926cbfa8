import fsp from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { removeStaleSocket } from '../cli/listen-address.js';
import { ControllerState } from './controller-state.js';
import { controllerService } from './controller.js';
import { toCsiStatus } from './csi-error.js';
import { identityService } from './identity.js';
import { nodeService } from './node.js';
import { socketPathTooLong } from './node-state.js';
import { loadCsiProto } from './proto.js';
import { VolumeLocks } from './volume-locks.js';

export type CsiMode = 'controller' | 'node' | 'both';

export interface CsiDriverOptions {
  /** unix:///path/csi.sock (the form kubelet and the sidecars are given) or unix:/path. */
  endpoint: string;
  mode: CsiMode;
  nodeId?: string;
  stateDir: string;
  logger: Logger;
}

export interface CsiDriver {
  socketPath: string;
  adopted: Array<{ volume: string; healthy: boolean; problem?: string }>;
  close(): Promise<void>;
}

export function socketOfEndpoint(endpoint: string): string {
  const m = /^unix:(?:\/\/)?(\/.+)$/.exec(endpoint) ?? (endpoint.startsWith('/') ? [endpoint, endpoint] : null);
  if (!m) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--endpoint must be a unix socket, unix:///path/to/csi.sock, not "${endpoint}"`);
  return path.resolve(m[1]!);
}

type Handler = (req: any) => Promise<object>;

/**
 * Every RPC through one wrapper (democratic-csi's request proxy): the handler's result,
 * or its error as the CSI status with a message that says what to do. Methods without a
 * handler answer UNIMPLEMENTED (grpc-js does that for missing ones), as the spec asks
 * for capabilities the plugin does not advertise.
 */
function wrap(service: string, handlers: Record<string, Handler>, log: Logger): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, fn] of Object.entries(handlers)) {
    out[name] = ((call: grpc.ServerUnaryCall<object, object>, cb: grpc.sendUnaryData<object>) => {
      const started = Date.now();
      fn(call.request).then(
        (res) => {
          log.debug('csi call', { rpc: `${service}.${name}`, ms: Date.now() - started });
          cb(null, res);
        },
        (err) => {
          const st = toCsiStatus(err);
          log[st.code === grpc.status.INTERNAL || st.code === grpc.status.UNKNOWN ? 'error' : 'info']('csi call failed', { rpc: `${service}.${name}`, code: grpc.status[st.code!], message: st.details, ms: Date.now() - started });
          cb(st);
        },
      );
    }) as grpc.handleUnaryCall<object, object>;
  }
  return out;
}

export async function startCsiDriver(o: CsiDriverOptions): Promise<CsiDriver> {
  const socketPath = socketOfEndpoint(o.endpoint);
  const stateDir = path.resolve(o.stateDir);
  if ((o.mode === 'node' || o.mode === 'both') && !o.nodeId) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--node-id is required with --mode ${o.mode}: it is this node's topology value (use the Kubernetes node name, spec.nodeName)`);
  }
  if (socketPathTooLong(stateDir)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--state-dir ${stateDir} is too long for the data paths' unix sockets (108 bytes); use a shorter directory`);
  }
  await fsp.mkdir(stateDir, { recursive: true });
  const svc = loadCsiProto();
  const locks = new VolumeLocks();
  const server = new grpc.Server();
  let adopted: CsiDriver['adopted'] = [];
  const node = o.mode !== 'controller' ? nodeService({ nodeId: o.nodeId!, stateDir, locks, logger: o.logger.child({ service: 'node' }) }) : undefined;
  server.addService(svc.Identity.service, wrap('Identity', identityService({ controller: o.mode !== 'node' }), o.logger));
  if (o.mode !== 'node') {
    const state = await ControllerState.open(stateDir);
    const ctl = controllerService({ state, locks, stateDir, ...(o.nodeId ? { nodeId: o.nodeId } : {}), ...(node ? { local: node.local } : {}), logger: o.logger.child({ service: 'controller' }) });
    server.addService(svc.Controller.service, wrap('Controller', ctl, o.logger));
  }
  if (node) {
    server.addService(svc.Node.service, wrap('Node', node.handlers, o.logger));
    adopted = await node.adopt();
  }
  await fsp.mkdir(path.dirname(socketPath), { recursive: true });
  await removeStaleSocket(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new RewindError(ErrorCodes.IO, `cannot listen on ${socketPath}: ${err.message}; is another driver serving it?`, { cause: err })) : resolve()));
  });
  o.logger.info('csi driver serving', { endpoint: `unix://${socketPath}`, mode: o.mode, nodeId: o.nodeId, stateDir, staged: adopted.length });
  return {
    socketPath,
    adopted,
    async close() {
      // In-flight calls finish; staged volumes' data paths are separate processes and go on.
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 30_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      await fsp.rm(socketPath, { force: true });
    },
  };
}
