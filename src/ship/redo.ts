import type { Logger } from '../core/logger.js';
import { RecordFlag, RecordKind } from '../journal/record.js';
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
      if (r.kind === RecordKind.Write && r.length > 0) {
        await backing.pwrite(r.payload, r.offset, { fua: false });
        bytes += r.length;
      } else if (r.kind === RecordKind.Trim && r.length > 0) {
        await backing.trim(r.offset, r.length, { fua: false });
      } else if (r.kind === RecordKind.Zero && r.length > 0) {
        await backing.zero(r.offset, r.length, { fua: false, noHole: (r.flags & RecordFlag.NoHole) !== 0 });
      }
      applied++;
    }
    from = recs[recs.length - 1]!.seq + 1n;
  }
  await backing.flush();
  log.info('redo done', { entries: applied, bytes });
  return applied;
}
