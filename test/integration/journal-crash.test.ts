import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isRewindError } from '../../src/core/errors.js';
import { repairJournal } from '../../src/journal/repair.js';
import { encodeSegmentHeader, SEGMENT_HEADER_SIZE, segmentName } from '../../src/journal/segment.js';
import { verifyJournal } from '../../src/journal/verify.js';
import { JournalWriter } from '../../src/journal/writer.js';
import { checkRec, collect, tempDir, writeRec } from '../helpers/journal-fixtures.js';

/**
 * The journal crash table (STYLE.md, LevelDB/etcd habit): each case damages a real journal
 * the way a crash or a bad disk would, then: confirm broken (verify) → repair (a torn tail
 * is repaired; corruption is reported with segment/offset/bytes and dropped only with
 * dropCorrupt) → read back → append → read back.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SEG = 64 * 1024;
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A journal of `n` records of 1000 bytes in 64 KiB segments; returns dir and segment names. */
async function build(n = 300): Promise<{ dir: string; segs: string[] }> {
  const dir = tempDir('rewind-crash-');
  dirs.push(dir);
  const w = await JournalWriter.open(dir, { segmentBytes: SEG });
  for (let s = 1n; s <= BigInt(n); s++) w.append(writeRec(s, 1000));
  await w.close();
  const segs = fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();
  return { dir, segs };
}

const REC = 48 + 1000;
const lastSegOf = (segs: string[]) => segs[segs.length - 1];

async function appendAndReadBack(dir: string, expectLast: bigint): Promise<void> {
  const w = await JournalWriter.open(dir, { segmentBytes: SEG });
  expect(w.lastSeq).toBe(expectLast);
  w.append(writeRec(expectLast + 1n, 1000));
  w.append(writeRec(expectLast + 2n, 1000));
  await w.close();
  const recs = await collect(dir);
  expect(recs.at(-1)!.seq).toBe(expectLast + 2n);
  expect(recs.every(checkRec)).toBe(true);
  expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: recs.length }, (_, i) => recs[0].seq + BigInt(i)));
  expect((await verifyJournal(dir)).ok).toBe(true);
}

interface Case {
  name: string;
  damage: (dir: string, segs: string[]) => void;
  torn: boolean;
}

const cases: Case[] = [
  {
    name: 'truncate mid-record (the file ends inside a record)',
    torn: true,
    damage: (dir, segs) => {
      const p = path.join(dir, lastSegOf(segs));
      fs.truncateSync(p, fs.statSync(p).size - REC * 3 - 500);
    },
  },
  {
    name: 'tear the last record (its last sectors never reached the disk)',
    torn: true,
    damage: (dir, segs) => {
      const p = path.join(dir, lastSegOf(segs));
      const size = fs.statSync(p).size;
      const fd = fs.openSync(p, 'r+');
      const from = Math.ceil((size - 700) / 512) * 512;
      fs.writeSync(fd, Buffer.alloc(size - from), 0, size - from, from);
      fs.closeSync(fd);
    },
  },
  {
    name: 'zero a middle 512-byte sector (of an older segment)',
    torn: false,
    damage: (dir, segs) => {
      const fd = fs.openSync(path.join(dir, segs[1]), 'r+');
      fs.writeSync(fd, Buffer.alloc(512), 0, 512, 512 * 40);
      fs.closeSync(fd);
    },
  },
  {
    // In the last segment the torn-tail rule applies, and must not fire: good records follow.
    name: 'zero a middle 512-byte sector of the last segment (good records after it)',
    torn: false,
    damage: (dir, segs) => {
      const fd = fs.openSync(path.join(dir, lastSegOf(segs)), 'r+');
      fs.writeSync(fd, Buffer.alloc(512), 0, 512, 512 * 6);
      fs.closeSync(fd);
    },
  },
  {
    name: 'flip a CRC byte (a middle record of the tail segment)',
    torn: false,
    damage: (dir, segs) => {
      const fd = fs.openSync(path.join(dir, lastSegOf(segs)), 'r+');
      const at = SEGMENT_HEADER_SIZE + REC * 5 + 44;
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, at);
      b[0] ^= 0x5a;
      fs.writeSync(fd, b, 0, 1, at);
      fs.closeSync(fd);
    },
  },
  {
    name: 'empty file after rotation (the crash came right after the create)',
    torn: true,
    damage: (dir) => {
      fs.writeFileSync(path.join(dir, segmentName(301n)), Buffer.alloc(0));
    },
  },
  {
    name: 'torn segment header after rotation (half-created segment)',
    torn: true,
    damage: (dir) => {
      // Rotation names the new segment after the next seq (the build wrote 300 records).
      fs.writeFileSync(path.join(dir, segmentName(301n)), Buffer.from('RWNDSEG1\x01\x00\x00', 'latin1'));
    },
  },
];

describe('journal crash table', () => {
  it('a valid empty segment left by a rotation (crash before its first record) is no damage: verify is clean, appends continue in it', async () => {
    const { dir } = await build();
    fs.writeFileSync(path.join(dir, segmentName(301n)), encodeSegmentHeader({ firstSeq: 301n, createdNs: 1n }));
    const v = await verifyJournal(dir);
    expect(v.ok).toBe(true);
    expect(v.tornTail).toBeUndefined();
    expect(v.corruptions).toEqual([]);
    await appendAndReadBack(dir, 300n);
    expect((await collect(dir, { fromSeq: 301n })).map((r) => r.seq)).toEqual([301n, 302n]);
  });

  for (const c of cases) {
    it(`${c.name}: detected, ${c.torn ? 'repaired as a torn tail' : 'reported, dropped only on request'}, appendable after`, async () => {
      const { dir, segs } = await build();
      const before = await collect(dir);
      c.damage(dir, segs);
      const sizeBefore: Record<string, number> = {};
      for (const s of segs) sizeBefore[s] = fs.statSync(path.join(dir, s)).size;
      const v = await verifyJournal(dir);
      if (c.torn) {
        // Confirm broken: a torn tail, and readers stop at it without error.
        expect(v.tornTail).toBeDefined();
        expect(v.ok).toBe(true);
        const tornBytes = fs.readFileSync(path.join(dir, v.tornTail!.segment));
        const r = await repairJournal(dir);
        expect(r.actions.length).toBe(1);
        expect(r.actions[0].backup).toMatch(/\.torn-at-\d+-.*\.bak$/);
        // The backup holds exactly the bytes cut off.
        expect(fs.readFileSync(r.actions[0].backup).equals(tornBytes.subarray(r.actions[0].offset))).toBe(true);
        expect(r.after.tornTail).toBeUndefined();
        const after = await collect(dir);
        expect(after.every(checkRec)).toBe(true);
        expect(after.length).toBe(r.after.records);
        expect(before.slice(0, after.length).map((x) => x.seq)).toEqual(after.map((x) => x.seq));
        await appendAndReadBack(dir, after.at(-1)!.seq);
        return;
      }
      // Corruption: reported with where and how much, never skipped.
      expect(v.ok).toBe(false);
      const k = v.corruptions[0];
      expect(k.segment).toMatch(/\.seg$/);
      expect(k.offset).toBeGreaterThan(SEGMENT_HEADER_SIZE - 1);
      expect(k.bytesDropped).toBeGreaterThan(0);
      expect(k.bytesDropped).toBeLessThan(3 * REC);
      // Readers throw at it.
      const err = await collect(dir).then(() => null, (e: unknown) => e);
      expect(isRewindError(err, 'REWIND_ERR_JOURNAL_CORRUPT')).toBe(true);
      expect((err as { details: Record<string, unknown> }).details).toMatchObject({ segment: k.segment, offset: k.offset });
      // Repair without dropCorrupt changes nothing and reports it.
      const r1 = await repairJournal(dir);
      expect(r1.actions).toEqual([]);
      expect(r1.remaining.length).toBeGreaterThan(0);
      if (k.segment === lastSegOf(segs)) {
        await expect(JournalWriter.open(dir, { segmentBytes: SEG })).rejects.toThrow(/corruption/);
      }
      // With dropCorrupt: the good prefix stays, exactly what was dropped is reported.
      const r2 = await repairJournal(dir, { dropCorrupt: true });
      expect(r2.actions[0]).toMatchObject({ segment: k.segment, action: 'truncated-corrupt', offset: k.offset });
      expect(r2.actions[0].bytesDropped).toBe(sizeBefore[k.segment] - k.offset);
      for (const a of r2.actions.slice(1)) expect(a).toMatchObject({ action: 'moved-aside', bytesDropped: sizeBefore[a.segment] });
      for (const a of r2.actions) expect(fs.existsSync(a.backup)).toBe(true);
      expect(r2.after.ok).toBe(true);
      const after = await collect(dir);
      expect(after.every(checkRec)).toBe(true);
      expect(after.length).toBeGreaterThan(0);
      expect(after.length).toBeLessThan(before.length);
      await appendAndReadBack(dir, after.at(-1)!.seq);
    });
  }

  it('kill -9 during heavy appends and syncs: everything synced is there, the tail is repaired, appends continue', async () => {
    const dir = tempDir('rewind-kill-');
    dirs.push(dir);
    const writerJs = path.join(ROOT, 'dist/src/journal/writer.js');
    expect(fs.existsSync(writerJs), `${writerJs} missing: the integration globalSetup builds dist/ with tsc`).toBe(true);
    const script = path.join(dir, 'child.mjs');
    // The child appends variable-size records as fast as it can, syncs every 16, and
    // prints each durable seq; the parent kills it with SIGKILL mid-stream.
    fs.writeFileSync(script, `
      import { JournalWriter } from ${JSON.stringify(writerJs)};
      const T0 = 1_700_000_000_000_000_000n;
      const w = await JournalWriter.open(${JSON.stringify(path.join(dir, 'j'))}, { segmentBytes: 256 * 1024 });
      for (let seq = 1n; ; seq++) {
        const len = 100 + Number(seq % 7n) * 3000;
        const payload = Buffer.alloc(len, Number(seq % 251n));
        payload.writeUInt32LE(Number(seq & 0xffffffffn), 0);
        w.append({ kind: 1, flags: 0, seq, time: T0 + seq * 1000n, offset: seq * 4096n, length: len, payload });
        if (seq % 16n === 0n) { await w.sync(); process.stdout.write('synced ' + w.durableSeq + '\\n'); }
      }
    `);
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let synced = 0n;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child did not sync 3000 records within 60 s')), 60_000);
      child.stdout!.on('data', (d: Buffer) => {
        for (const m of d.toString().matchAll(/synced (\d+)/g)) synced = BigInt(m[1]);
        if (synced >= 3000n) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => { clearTimeout(timer); resolve(); });
    });
    await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.on('exit', () => r())));
    expect(child.signalCode).toBe('SIGKILL');
    const j = path.join(dir, 'j');
    const v = await verifyJournal(j);
    expect(v.ok).toBe(true); // a kill can tear the tail, never corrupt the middle
    expect(v.lastSeq! >= synced).toBe(true);
    const r = await repairJournal(j);
    expect(r.after.tornTail).toBeUndefined();
    const recs = await collect(j);
    expect(recs.length).toBe(Number(r.after.lastSeq));
    expect(recs.length >= Number(synced)).toBe(true);
    for (const x of recs) {
      const len = 100 + Number(x.seq % 7n) * 3000;
      const want = Buffer.alloc(len, Number(x.seq % 251n));
      want.writeUInt32LE(Number(x.seq & 0xffffffffn), 0);
      if (!x.payload.equals(want)) throw new Error(`seq ${x.seq} payload differs`);
    }
    const w = await JournalWriter.open(j, { segmentBytes: 256 * 1024 });
    const next = w.lastSeq + 1n;
    w.append({ ...writeRec(next, 10), time: w.lastTime + 1n });
    await w.close();
    expect((await collect(j, { fromSeq: next })).map((x) => x.seq)).toEqual([next]);
  });
});
