/**
 * Child process for the kill -9 test: appends a seeded random history to a collector store
 * forever, printing "acked <seq>" each time an append resolves (= durably acknowledged).
 * Usage: node --import tsx collector-store-crash-child.ts DATADIR SIZE SEED
 */
import { CollectorStore } from '../../src/collector/store/index.js';
import { Rng, VolumeModel } from './collector-store-model.js';

const [dir, sizeArg, seedArg] = process.argv.slice(2);
const size = Number(sizeArg);
const store = await CollectorStore.open(dir!, { segmentBytes: 512 * 1024 });
const vol = await store.createVolume('crashy', BigInt(size));
const model = new VolumeModel(size, new Rng(Number(seedArg)), 'seeded');
const batchRng = new Rng(7);
process.stdout.write('ready\n');
// Bounded: the parent kills us long before this ends.
for (let round = 0; round < 100_000; round++) {
  const n = 1 + batchRng.int(6);
  const batch = Array.from({ length: n }, () => model.nextRecord(32 * 1024));
  const acked = await vol.append(batch);
  process.stdout.write(`acked ${acked}\n`);
}
await store.close();
