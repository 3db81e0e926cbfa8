/**
 * A node-side shipper in its own process, so a test can kill -9 it mid-stream.
 * argv: <spoolDir> <collectorAddress> <volume> <token> <sizeBytes>.
 * Appends deterministic writes (content derived from the seq, see expectedWrite) forever.
 */
import { RecordKind } from '../../src/journal/record.js';
import { Shipper } from '../../src/ship/shipper.js';
import { Spool } from '../../src/ship/spool.js';
import { expectedWrite } from './stream-fixtures.js';

const [spoolDir, address, volume, token, sizeText] = process.argv.slice(2);
const size = BigInt(sizeText!);
const spool = await Spool.open(spoolDir!, { volumeSize: size, maxBytes: 64 * 1024 * 1024, fullPolicy: 'block' });
const shipper = new Shipper({ spool, volume: volume!, size, token: token!, target: { address: address!, allowPlaintext: true }, mode: 'async', maxBatchRecords: 8 });
shipper.start();
process.stdout.write('READY\n');
for (let i = 0; i < 1_000_000; i++) {
  const w = expectedWrite(spool.lastSeq + 1n, size);
  await spool.append({ kind: RecordKind.Write, flags: 0, offset: w.offset, length: w.payload.length, payload: w.payload });
  if (i % 20 === 0) await spool.sync();
  await new Promise((r) => setTimeout(r, 1));
}
