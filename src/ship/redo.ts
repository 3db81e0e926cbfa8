import type { Logger } from '../core/logger.js';
import { readJournal } from '../journal/reader.js';
import { RecordFlag, RecordKind, type JournalRecord } from '../journal/record.js';
import type { Backend } from '../nbd/backend.js';
import type { Spool } from './spool.js';

const REDO_BATCH_BYTES = 32 * 1024 * 1024;

/**
 * Replay every entry still in the spool onto the backing volume, oldest first, then sync
 * it. After a crash the backing file holds every entry older than the spool durably (the
 * spool syncs it before freeing them) plus an unknown part of the rest; applying the rest
 * in journal order gives each byte its last journaled value, whatever part had landed.
 * Returns the number of entries applied.
 */
export async function redoSpool(spool: Spool, backing: Backend, log: Logger): Promise<number> {
  const first = spool.firstSeq;
  const last = spool.lastSeq;
  if (last < first) return 0;
  log.info('redo of the spool onto the backing file after an unclean shutdown', { fromSeq: first, toSeq: last });
  let applied = 0;
  let bytes = 0;
  for (let from = first; from <= last; ) {
    const recs = await spool.read(from, { maxBytes: REDO_BATCH_BYTES, maxRecords: 4096 });
    if (recs.length === 0) break;
    for (const r of recs) {
      bytes += await applyRecord(r, backing);
      applied++;
    }
    from = recs[recs.length - 1]!.seq + 1n;
  }
  await backing.flush();
  log.info('redo done', { entries: applied, bytes });
  return applied;
}

/**
 * The same for a journal directory the spool is about to set aside (spool.ts open: the
 * journal ends before the acked seq, which a power cut leaves on a spool written before
 * acks waited for the journal's fdatasync). Its entries may include FLUSHed writes the
 * backing file lost, and once it is set aside nothing could bring them back.
 */
export async function redoJournalDir(dir: string, backing: Backend, log: Logger): Promise<number> {
  let applied = 0;
  let bytes = 0;
  for await (const r of readJournal(dir)) {
    bytes += await applyRecord(r, backing);
    applied++;
  }
  await backing.flush();
  log.info('redo of a journal set aside done', { dir, entries: applied, bytes });
  return applied;
}

async function applyRecord(r: JournalRecord, backing: Backend): Promise<number> {
  if (r.kind === RecordKind.Write && r.length > 0) {
    await backing.pwrite(r.payload, r.offset, { fua: false });
    return r.length;
  }
  if (r.kind === RecordKind.Trim && r.length > 0) await backing.trim(r.offset, r.length, { fua: false });
  else if (r.kind === RecordKind.Zero && r.length > 0) await backing.zero(r.offset, r.length, { fua: false, noHole: (r.flags & RecordFlag.NoHole) !== 0 });
  return 0;
}
