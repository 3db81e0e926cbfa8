/**
 * A collector in its own process, so a test can kill -9 it mid-stream.
 * argv: <dataDir> <port>. Prints "READY <port>" once listening.
 */
import { startCollectorGrpc } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/index.js';

const [dataDir, port] = process.argv.slice(2);
const store = await CollectorStore.open(dataDir!);
const server = await startCollectorGrpc({ store: storePort(store), listen: { host: '127.0.0.1', port: Number(port ?? 0) }, allowPlaintext: true });
process.stdout.write(`READY ${server.port}\n`);
process.on('SIGTERM', () => {
  void server.close().then(() => store.close()).then(() => process.exit(0));
});
