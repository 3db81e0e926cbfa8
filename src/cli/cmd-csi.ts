import { ErrorCodes, RewindError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { startCsiDriver, type CsiMode } from '../csi/server.js';
import { DRIVER_NAME, TOPOLOGY_KEY } from '../csi/proto.js';
import { need, str, toJson, type Command } from './args.js';

export const csiCommand: Command = {
  name: 'csi',
  summary: `Run the CSI driver (${DRIVER_NAME}): Identity, Controller and/or Node services on a unix socket`,
  usage: `rewind csi --endpoint unix:///PATH/csi.sock --state-dir DIR [--mode controller|node|both]
                 [--node-id NODE]

--endpoint   the unix socket kubelet and the sidecars dial (unix:///csi/csi.sock)
--state-dir  where the driver keeps its state (created if missing): controller/volumes.json,
             and per volume node/volumes/ID/ (sparse backing file, spool, staged.json,
             logs) and run/ (the data paths' sockets). Keep it on the node's disk, across
             plugin restarts: it is how a restarted plugin finds what is staged
--mode       controller: CreateVolume, DeleteVolume, ListVolumes, GetCapacity...;
             node: NodeStage/Publish and friends; both (default): one process for each
             node, with the external-provisioner run per node (--node-deployment), which
             suits the local backing model: a volume's sparse file is on its node, so the
             node that holds it creates and deletes it
--node-id    this node's name (the Kubernetes node name); required with node or both. It is
             the value of the topology key ${TOPOLOGY_KEY}

StorageClass parameters (copied into each volume's context, read at NodeStage):
  collector           the collector's gRPC address (HOST:PORT or unix:/path.sock): the
                      volume ships every write there from its first one
  collectorPlaintext  "true": no TLS to the collector; otherwise TLS from the node-stage
                      secret (ca.crt, and tls.crt/tls.key for mutual TLS)
  durability          async | flush-sync (default with a collector) | sync
  spoolMax            bytes the node's spool may hold (e.g. 4G); fullPolicy block | dirty-bitmap
  csi.storage.k8s.io/fstype          ext4 (default), ext3, ext2 or xfs
  csi.storage.k8s.io/node-stage-secret-name/-namespace   the Secret with the volume's
                      collector token under "token" (the ProtectedVolume's token Secret)

NodeStageVolume starts the volume's data path (\`rewind serve\`: NBD server on a unix
socket, spool, shipper) as a process of its own that outlives the plugin, attaches a block
device (nbdfuse + a loop device), formats it when empty and mounts it. A restarted plugin
re-adopts what is staged from each volume's staged.json.

On start it prints one JSON line ({"endpoint": ..., "mode": ..., "staged": [...]}), then
serves until SIGINT/SIGTERM, finishes the calls in flight, removes the socket and exits 0;
staged volumes keep running.`,
  options: {
    endpoint: { type: 'string' },
    'state-dir': { type: 'string' },
    mode: { type: 'string' },
    'node-id': { type: 'string' },
  },
  async run(args, io) {
    const endpoint = need(args, 'endpoint', this.name);
    const stateDir = need(args, 'state-dir', this.name);
    const mode = str(args, 'mode') ?? 'both';
    if (mode !== 'controller' && mode !== 'node' && mode !== 'both') {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--mode must be controller, node or both, not "${mode}"`);
    }
    const nodeId = str(args, 'node-id');
    const log = createLogger({ component: 'csi' });
    const driver = await startCsiDriver({ endpoint, mode: mode as CsiMode, stateDir, ...(nodeId ? { nodeId } : {}), logger: log });
    io.out(toJson({ endpoint: `unix://${driver.socketPath}`, mode, ...(nodeId ? { nodeId } : {}), staged: driver.adopted }, false) + '\n');
    const signal = await io.stopSignal;
    log.info('stopping', { signal });
    await driver.close();
    return 0;
  },
};
