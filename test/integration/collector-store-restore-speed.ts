/**
 * Restore-speed measurement (not a test): builds a volume with HISTORY_GIB of random
 * unaligned writes over a SIZE_GIB volume, then times a full restore to a file against a
 * plain sequential copy of the same number of bytes on the same disk, and prints the ratio.
 * Usage: node --import tsx collector-store-restore-speed.ts DIR [sizeMiB] [historyMiB] [writeKiB]
 */
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { CollectorStore } from '../../src/collector/store/index.js';
import { HybridClock } from '../../src/core/hlc.js';
import { RecordKind, type JournalRecord } from '../../src/journal/record.js';
import { Rng } from './collector-store-model.js';

const [dir, sizeMiB = '1024', histMiB = '4096', writeKiB = '256'] = process.argv.slice(2);
const MiB = 1024 * 1024;
const size = Number(sizeMiB) * MiB;
const wlen = Number(writeKiB) * 1024;
const pool = randomBytes(8 * MiB);
const rng = new Rng(1);
const clock = new HybridClock();
await fsp.rm(dir!, { recursive: true, force: true });
const store = await CollectorStore.open(dir!, {});
const vol = await store.createVolume('bench', BigInt(size));
let t0 = performance.now();
let seq = 0n;
const n = Math.floor((Number(histMiB) * MiB) / wlen);
for (let i = 0; i < n; ) {
  const batch: JournalRecord[] = [];
  for (let k = 0; k < 16 && i < n; k++, i++) {
    const off = rng.int(size - wlen) & ~511; // sector aligned but not block aligned
    const p = rng.int(pool.length - wlen);
    batch.push({ kind: RecordKind.Write, flags: 0, seq: ++seq, time: clock.now(), offset: BigInt(off), length: wlen, payload: pool.subarray(p, p + wlen) });
  }
  await vol.append(batch);
}
const ingest = (performance.now() - t0) / 1000;
console.log(`ingest: ${n} writes of ${writeKiB} KiB = ${histMiB} MiB in ${ingest.toFixed(1)} s (${(Number(histMiB) / ingest).toFixed(0)} MiB/s)`);
await store.close();
// Reopen: the index is rebuilt from segment headers.
t0 = performance.now();
const s2 = await CollectorStore.open(dir!, {});
const v2 = s2.volume('bench')!;
console.log(`reopen (header scan of ${n} records): ${((performance.now() - t0) / 1000).toFixed(2)} s`);

const out = path.join(dir!, 'restored.img');
const fh = await fsp.open(out, 'w');
t0 = performance.now();
await v2.restore({ seq: v2.durableSeq }, async (c) => {
  if (c.data) await fh.write(c.data, 0, c.length, Number(c.offset));
});
await fh.truncate(size);
await fh.sync();
await fh.close();
const restore = (performance.now() - t0) / 1000;

// Reference: plain sequential copy of a file of the same size, 4 MiB at a time, then fsync.
const src = path.join(dir!, 'plain.src');
const w = await fsp.open(src, 'w');
for (let o = 0; o < size; o += 4 * MiB) await w.write(pool.subarray(0, 4 * MiB), 0, 4 * MiB, o);
await w.sync();
await w.close();
const r = await fsp.open(src, 'r');
const d = await fsp.open(path.join(dir!, 'plain.dst'), 'w');
const buf = Buffer.allocUnsafe(4 * MiB);
t0 = performance.now();
for (let o = 0; o < size; o += 4 * MiB) {
  const { bytesRead } = await r.read(buf, 0, 4 * MiB, o);
  await d.write(buf, 0, bytesRead, o);
}
await d.sync();
const copy = (performance.now() - t0) / 1000;
await r.close();
await d.close();
console.log(`restore ${sizeMiB} MiB with ${histMiB} MiB history: ${restore.toFixed(2)} s; plain copy: ${copy.toFixed(2)} s; ratio ${(restore / copy).toFixed(2)}x (target <= 2x)`);
t0 = performance.now();
// Two points 1% of the volume apart (in bytes written).
const back = BigInt(Math.max(1, Math.floor(size / 100 / wlen)));
const ext = await v2.diff({ seq: v2.durableSeq - back }, { seq: v2.durableSeq });
const exactMs = performance.now() - t0;
t0 = performance.now();
const loose = await v2.diff({ seq: v2.durableSeq - back }, { seq: v2.durableSeq }, { exact: false });
console.log(`diff of two points ${back} writes (1% of the volume) apart: exact ${ext.length} extents in ${exactMs.toFixed(1)} ms; log-only ${loose.length} extents in ${(performance.now() - t0).toFixed(1)} ms`);
await s2.close();
await fsp.rm(dir!, { recursive: true, force: true });
