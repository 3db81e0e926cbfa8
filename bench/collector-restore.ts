/**
 * Items 2 and 3: restore of a volume with a long history against a plain sequential copy
 * of the same number of bytes on the same disk, and the diff of two marks 1% of the volume
 * apart. History is the realistic write mix of collector-workload.ts, appended in 1 MiB
 * batches; the store is closed and reopened before restoring (index rebuilt from segment
 * headers, as after a collector restart), and the page cache is dropped before each timed
 * restore/copy when the kernel lets us, so both sides read cold.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { CollectorStore, type VolumeStore } from '../src/collector/store/index.js';
import { dropCaches, MiB, payloadBytes, sequentialCopy, WriteMix, writeFile } from './collector-workload.js';

export interface RestoreResult {
  volumeBytes: number;
  historyBytes: number;
  records: number;
  mix: string;
  buildSecs: number;
  reopenSecs: number;
  restoreSecs: number;
  copySecs: number;
  ratio: number;
  cold: boolean;
  diff: DiffResult;
}

export interface DiffResult {
  changedBytes: number;
  exactMs: number;
  exactFirstMs: number;
  exactExtents: number;
  looseMs: number;
  looseExtents: number;
}

async function timeMs<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await f();
  return [performance.now() - t0, v];
}

/** Diff between marks "a" and "b": first call, then the median of five more. */
async function benchDiff(vol: VolumeStore, changedBytes: number): Promise<DiffResult> {
  const a = { mark: 'a' };
  const b = { mark: 'b' };
  const [exactFirstMs, first] = await timeMs(() => vol.diff(a, b));
  const exact: number[] = [];
  const loose: number[] = [];
  let looseExtents = 0;
  for (let i = 0; i < 5; i++) {
    exact.push((await timeMs(() => vol.diff(a, b)))[0]);
    const [ms, l] = await timeMs(() => vol.diff(a, b, { exact: false }));
    loose.push(ms);
    looseExtents = l.length;
  }
  const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { changedBytes, exactMs: med(exact), exactFirstMs, exactExtents: first.length, looseMs: med(loose), looseExtents };
}

export async function benchRestore(work: string, volumeBytes: number, historyBytes: number): Promise<RestoreResult> {
  const dir = path.join(work, 'restore');
  const mix = new WriteMix(volumeBytes, 1);
  let store = await CollectorStore.open(dir);
  const vol = await store.createVolume('bench', BigInt(volumeBytes));
  let [buildMs] = await timeMs(async () => {
    for (let done = 0; done < historyBytes; ) {
      const b = mix.batch(MiB);
      await vol.append(b);
      done += payloadBytes(b);
    }
  });
  // Item 3's marks: "a" at the end of the long history, then 1% of the volume rewritten, then "b".
  await vol.addMark('a');
  let changed = 0;
  const [tailMs] = await timeMs(async () => {
    while (changed < volumeBytes / 100) {
      const b = mix.batch(Math.min(MiB, volumeBytes / 100 - changed));
      await vol.append(b);
      changed += payloadBytes(b);
    }
  });
  buildMs += tailMs;
  await vol.addMark('b');
  const records = Number(mix.seq);
  const mixCounts = mix.describeCounts();
  await store.close();

  const [reopenMs, s2] = await timeMs(() => CollectorStore.open(dir));
  store = s2;
  try {
    const v2 = store.volume('bench')!;
    const out = path.join(work, 'restored.img');
    const cold = await dropCaches();
    const [restoreMs] = await timeMs(async () => {
      const fh = await fsp.open(out, 'w');
      try {
        await v2.restore({ mark: 'b' }, async (c) => {
          if (c.data) await fh.write(c.data, 0, c.length, Number(c.offset));
        });
        await fh.truncate(volumeBytes);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    });
    await fsp.rm(out, { force: true });

    const src = path.join(work, 'plain.src');
    const dst = path.join(work, 'plain.dst');
    await writeFile(src, volumeBytes);
    if (cold) await dropCaches();
    const copySecs = await sequentialCopy(src, dst, volumeBytes);
    await fsp.rm(src, { force: true });
    await fsp.rm(dst, { force: true });

    const diff = await benchDiff(v2, changed);
    return {
      volumeBytes,
      historyBytes: historyBytes + changed,
      records,
      mix: mixCounts,
      buildSecs: buildMs / 1000,
      reopenSecs: reopenMs / 1000,
      restoreSecs: restoreMs / 1000,
      copySecs,
      ratio: restoreMs / 1000 / copySecs,
      cold,
      diff,
    };
  } finally {
    await store.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
