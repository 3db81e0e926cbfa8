import fsp from 'node:fs/promises';
import path from 'node:path';
import { silentLogger, type Logger } from '../core/logger.js';
import { backupCorruptSegment, backupTornTail, fsyncDir, listSegments, SEGMENT_HEADER_SIZE } from './segment.js';
import { verifyJournal, type VerifyReport } from './verify.js';
import { truncateDurably } from '../core/atomic-file.js';

export interface RepairAction {
  segment: string;
  action: 'truncated-torn-tail' | 'removed-torn-segment' | 'truncated-corrupt' | 'moved-aside';
  /** Where the kept prefix ends (0 when the whole segment went). */
  offset: number;
  bytesDropped: number;
  /** What was kept before the change: a torn tail's cut bytes, a corrupt segment's whole copy; for moved-aside, where the segment now is. */
  backup: string;
}

export interface RepairReport {
  before: VerifyReport;
  actions: RepairAction[];
  after: VerifyReport;
  /** Corruption that is still there (reported, not dropped: pass dropCorrupt to drop it). */
  remaining: VerifyReport['corruptions'];
}

/**
 * Make a journal readable again, backing up each segment before changing it.
 * - A torn tail is truncated (a segment with only a torn header is removed).
 * - Corruption is only dropped with `dropCorrupt`: the segment holding the FIRST problem is
 *   truncated there, keeping its good prefix, and every later segment is moved aside
 *   (renamed to `*.dropped-*.bak`), because records after a hole cannot be replayed in
 *   order. Each drop is in `actions` with its byte count. Without `dropCorrupt`
 *   corruption is left alone and returned in `remaining`.
 */
export async function repairJournal(dir: string, opts: { dropCorrupt?: boolean; logger?: Logger } = {}): Promise<RepairReport> {
  const log = opts.logger ?? silentLogger;
  const before = await verifyJournal(dir);
  const actions: RepairAction[] = [];
  const segs = await listSegments(dir);
  let tornHandled = false;

  if (opts.dropCorrupt && before.corruptions.length > 0) {
    const first = before.corruptions[0];
    const idx = segs.findIndex((s) => s.name === first.segment);
    for (let i = idx; i < segs.length; i++) {
      const s = segs[i];
      if (i === idx && first.offset > SEGMENT_HEADER_SIZE) {
        const bak = await backupCorruptSegment(s.path);
        await truncateDurably(s.path, first.offset);
        actions.push({ segment: s.name, action: 'truncated-corrupt', offset: first.offset, bytesDropped: s.size - first.offset, backup: bak });
      } else {
        const aside = `${s.path}.dropped-${stamp()}.bak`;
        await fsp.rename(s.path, aside);
        actions.push({ segment: s.name, action: 'moved-aside', offset: 0, bytesDropped: s.size, backup: aside });
      }
    }
    await fsyncDir(dir);
    tornHandled = true; // the torn tail, if any, is at or after the first corruption
  }

  if (!tornHandled && before.tornTail) {
    const t = before.tornTail;
    const p = path.join(dir, t.segment);
    const bak = await backupTornTail(p, t.offset);
    if (t.offset === 0) {
      await fsp.unlink(p);
      await fsyncDir(dir);
      actions.push({ segment: t.segment, action: 'removed-torn-segment', offset: 0, bytesDropped: t.bytes, backup: bak });
    } else {
      await truncateDurably(p, t.offset);
      actions.push({ segment: t.segment, action: 'truncated-torn-tail', offset: t.offset, bytesDropped: t.bytes, backup: bak });
    }
  }

  for (const a of actions) log.warn('journal repair', { dir, ...a });
  const after = actions.length > 0 ? await verifyJournal(dir) : before;
  return { before, actions, after, remaining: after.corruptions };
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}
