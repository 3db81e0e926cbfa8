/**
 * The collector side of the gRPC ingest benchmark, in its own process as in a real
 * deployment (shipper on the node, collector elsewhere): both in one Node process would
 * share one event loop and measure neither. Usage: node collector-grpc-child.js DATA_DIR SOCKET|tcp
 * (`tcp`: 127.0.0.1 on a free port). Prints "ready ADDRESS" once listening; closes cleanly on SIGTERM.
 */
import { startCollectorGrpc } from '../src/collector/grpc/server.js';
import { storePort } from '../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../src/collector/store/index.js';

const [dataDir, socket] = process.argv.slice(2);
if (!dataDir || !socket) {
  process.stderr.write('usage: collector-grpc-child.js DATA_DIR SOCKET|tcp\n');
  process.exit(2);
}
const store = await CollectorStore.open(dataDir);
const listen = socket === 'tcp' ? { host: '127.0.0.1', port: 0 } : { path: socket };
const server = await startCollectorGrpc({ store: storePort(store), listen, allowPlaintext: true });
process.once('SIGTERM', () => {
  void (async () => {
    await server.close();
    await store.close();
    process.exit(0);
  })();
});
process.stdout.write(`ready ${server.address}\n`);
