import fs from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { startCollectorGrpc, type CollectorGrpcServer } from '../../src/collector/grpc/server.js';
import { storePort } from '../../src/collector/grpc/store-adapter.js';
import { CollectorStore } from '../../src/collector/store/collector-store.js';
import { tempDir } from './journal-fixtures.js';

export interface LoopbackCollector {
  store: CollectorStore;
  server: CollectorGrpcServer;
  /** Temporary directories of the test file, removed after it with the collector's. */
  dirs: string[];
}

/**
 * One in-process collector (store + plaintext gRPC on 127.0.0.1) for a test file: started
 * before its tests, closed after them. The fields are set once beforeAll has run.
 */
export function loopbackCollector(prefix: string): LoopbackCollector {
  const c = { dirs: [] as string[] } as LoopbackCollector;
  beforeAll(async () => {
    const root = tempDir(prefix);
    c.dirs.push(root);
    c.store = await CollectorStore.open(root);
    c.server = await startCollectorGrpc({ store: storePort(c.store), listen: { host: '127.0.0.1', port: 0 }, allowPlaintext: true });
  });
  afterAll(async () => {
    await c.server?.close();
    await c.store?.close();
    for (const d of c.dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  return c;
}
