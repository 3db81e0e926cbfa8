import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RecordKind, type JournalRecord } from '../../src/journal/record.js';
import { readJournal } from '../../src/journal/reader.js';

/** Shared by the journal and spool tests. */
export function tempDir(prefix = 'rewind-journal-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const T0 = 1_700_000_000_000_000_000n;

/** A write record whose payload is derived from seq, so a read-back can be checked. */
export function writeRec(seq: bigint, len = 100): JournalRecord {
  const payload = Buffer.alloc(len, Number(seq % 251n));
  payload.writeUInt32LE(Number(seq & 0xffffffffn), 0);
  return { kind: RecordKind.Write, flags: 0, seq, time: T0 + seq * 1000n, offset: seq * 4096n, length: len, payload };
}

export function checkRec(r: JournalRecord): boolean {
  const want = writeRec(r.seq, r.payload.length);
  return r.kind === want.kind && r.time === want.time && r.offset === want.offset && r.payload.equals(want.payload);
}

export async function collect(dir: string, opts: Parameters<typeof readJournal>[1] = {}): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  for await (const r of readJournal(dir, opts)) out.push(r);
  return out;
}
