import fs from 'node:fs/promises';
import { ErrorCodes, RewindError } from '../core/errors.js';
import { formatNs } from '../core/hlc.js';
import { parseInstant, parseSize } from '../core/time-parse.js';
import { kindName, RecordKind, type JournalRecord } from '../journal/record.js';
import { readJournal } from '../journal/reader.js';
import { repairJournal } from '../journal/repair.js';
import { verifyJournal } from '../journal/verify.js';
import { applyRecords } from '../journal/replay.js';
import { flag, need, str, toJson, type Command } from './args.js';

const journalDirHelp = 'DIR is a journal directory: the --spool of `rewind serve`, or a collector volume journal.';

export const verifyCommand: Command = {
  name: 'journal verify',
  summary: 'Check every record CRC and the sequence of a journal; report torn tails and corruption',
  usage: `rewind journal verify DIR [--json]

${journalDirHelp}
Exit status: 0 clean (a torn tail is reported but is normal after a crash: it is repaired on
the next open), 1 corruption found, 2 bad usage.`,
  options: { json: { type: 'boolean' } },
  async run(args, io) {
    const dir = await journalDirOf(args.positionals[0] ?? need(args, 'dir', this.name));
    const report = await verifyJournal(dir);
    if (flag(args, 'json')) io.out(toJson(report) + '\n');
    else {
      io.out(
        `${report.segments} segment(s), ${report.records} record(s), ${report.bytes} bytes` +
          (report.firstTime !== null && report.lastTime !== null ? `, seq ${report.firstSeq}..${report.lastSeq}, ${formatNs(report.firstTime)} .. ${formatNs(report.lastTime)}` : '') +
          '\n',
      );
      const t = report.tornTail;
      if (t?.padding) io.out(`end: ${t.segment} ends in ${t.bytes} bytes of zero padding at offset ${t.offset} (written directly and still open, or stopped without closing); dropped on next open\n`);
      else if (t) io.out(`torn tail: ${t.segment} at offset ${t.offset} (${t.bytes} bytes); repaired on next open or by \`rewind journal repair\`\n`);
      for (const c of report.corruptions) io.out(`CORRUPT: ${c.segment} at offset ${c.offset}: ${c.reason} (${c.bytesDropped} bytes unreadable)\n`);
      if (report.corruptions.length === 0) io.out('ok\n');
    }
    return report.corruptions.length > 0 ? 1 : 0;
  },
};

export const repairCommand: Command = {
  name: 'journal repair',
  summary: 'Truncate a torn tail (after keeping the cut bytes aside); with --drop-corrupt, also cut at corruption',
  usage: `rewind journal repair DIR [--drop-corrupt] [--json]

${journalDirHelp}
What a repair cuts is kept first in a .bak file beside the segment: the bytes of a torn tail
(<segment>.torn-at-OFFSET-….bak), or a whole copy of a segment cut at corruption. Corruption in the
middle of the journal is only reported unless --drop-corrupt is given, because dropping it
loses every record after the damage in that segment.`,
  options: { json: { type: 'boolean' }, 'drop-corrupt': { type: 'boolean' } },
  async run(args, io) {
    const dir = await journalDirOf(args.positionals[0] ?? need(args, 'dir', this.name));
    const report = await repairJournal(dir, { dropCorrupt: flag(args, 'drop-corrupt') });
    if (flag(args, 'json')) io.out(toJson(report) + '\n');
    else {
      for (const a of report.actions) io.out(`${a.action}: ${a.segment} at offset ${a.offset}, ${a.bytesDropped} bytes dropped (backup: ${a.backup})\n`);
      for (const c of report.remaining) io.out(`CORRUPT (left in place; --drop-corrupt drops it): ${c.segment} at offset ${c.offset}: ${c.reason}\n`);
      if (report.actions.length === 0 && report.remaining.length === 0) io.out('nothing to repair\n');
    }
    return report.remaining.length > 0 ? 1 : 0;
  },
};

function recordJson(r: JournalRecord, withPayload: boolean) {
  return {
    seq: r.seq,
    time: formatNs(r.time),
    timeNs: r.time,
    kind: kindName(r.kind),
    flags: r.flags,
    offset: r.offset,
    length: r.length,
    ...(r.kind === RecordKind.Mark ? { name: r.payload.toString('utf8') } : {}),
    ...(withPayload && r.kind === RecordKind.Write ? { payload: r.payload.toString('base64') } : {}),
  };
}

export const dumpCommand: Command = {
  name: 'journal dump',
  summary: 'Print the records of a journal, one per line (or JSON lines with --json)',
  usage: `rewind journal dump DIR [--json] [--payload] [--from-seq N] [--to-seq N] [--until TIME] [--limit N]

${journalDirHelp}
TIME: RFC 3339, "90s ago", "now", or ns since the epoch.`,
  options: {
    json: { type: 'boolean' },
    payload: { type: 'boolean' },
    'from-seq': { type: 'string' },
    'to-seq': { type: 'string' },
    until: { type: 'string' },
    limit: { type: 'string' },
  },
  async run(args, io) {
    const dir = await journalDirOf(args.positionals[0] ?? need(args, 'dir', this.name));
    const limit = str(args, 'limit') ? Number(str(args, 'limit')) : Infinity;
    let n = 0;
    for await (const r of readJournal(dir, journalRange(args))) {
      if (n++ >= limit) break;
      if (flag(args, 'json')) io.out(toJson(recordJson(r, flag(args, 'payload')), false) + '\n');
      else {
        const name = r.kind === RecordKind.Mark ? ` "${r.payload.toString('utf8')}"` : '';
        io.out(`${r.seq}\t${formatNs(r.time)}\t${kindName(r.kind).padEnd(5)}\toffset=${r.offset}\tlength=${r.length}${r.flags ? `\tflags=${r.flags}` : ''}${name}\n`);
      }
    }
    return 0;
  },
};

function journalRange(args: { values: Record<string, unknown> }) {
  const v = args.values as Record<string, string | undefined>;
  return {
    fromSeq: v['from-seq'] ? BigInt(v['from-seq']) : undefined,
    toSeq: v['to-seq'] ? BigInt(v['to-seq']) : undefined,
    untilTime: v.until ? parseInstant(v.until) : undefined,
  };
}

export const replayCommand: Command = {
  name: 'journal replay',
  summary: 'Apply a journal onto a base image up to an instant, seq or mark: a local point-in-time restore',
  usage: `rewind journal replay DIR --out IMAGE [--base IMAGE] [--size SIZE]
                      [--until TIME | --until-seq N | --until-mark NAME] [--quiet]

${journalDirHelp}
--out      the image to write (created sparse; replaced if it exists)
--base     start from a copy of this image (default: all zeros — right for a journal that
           begins when the volume was empty or with a base copy)
--size     size of the output (default: the base's size, else the volume size the journal records)
--until    apply entries with time <= TIME (RFC 3339, "90s ago", ns since epoch)
--until-seq   apply entries with seq <= N
--until-mark  apply entries up to and including the mark named NAME (error if absent)
--quiet    no progress lines on stderr`,
  options: {
    out: { type: 'string' },
    base: { type: 'string' },
    size: { type: 'string' },
    until: { type: 'string' },
    'until-seq': { type: 'string' },
    'until-mark': { type: 'string' },
    quiet: { type: 'boolean' },
  },
  async run(args, io) {
    const dir = await journalDirOf(args.positionals[0] ?? need(args, 'dir', this.name));
    const out = need(args, 'out', this.name);
    const base = str(args, 'base');
    const untilMark = str(args, 'until-mark');
    const bounds = [str(args, 'until'), str(args, 'until-seq'), untilMark].filter((x) => x !== undefined);
    if (bounds.length > 1) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'give at most one of --until, --until-seq, --until-mark');
    await refusePastStop(args.positionals[0] ?? String(args.values.dir), str(args, 'until'), str(args, 'until-seq'), untilMark);
    let size: bigint | undefined = str(args, 'size') ? parseSize(str(args, 'size')!) : undefined;
    if (base) {
      await fs.copyFile(base, out);
      size ??= BigInt((await fs.stat(base)).size);
    } else {
      await fs.rm(out, { force: true });
    }
    size ??= await volumeSizeOf(args.positionals[0]!);
    if (size === undefined) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `cannot tell the volume size of ${dir}; pass --size (e.g. --size 1G) or --base IMAGE`);
    }
    const fh = await fs.open(out, base ? 'r+' : 'w+');
    try {
      await fh.truncate(Number(size));
      const result = await applyRecords(fh, readJournal(dir, journalRange(args)), {
        size,
        untilMark,
        onProgress: flag(args, 'quiet') ? undefined : (n, bytes) => io.err(`replay: ${n} entries, ${bytes} bytes applied\n`),
      });
      if (untilMark !== undefined && !result.markFound) {
        throw new RewindError(ErrorCodes.NOT_FOUND, `no mark named "${untilMark}" in ${dir}; list marks with \`rewind journal dump ${dir} | grep mark\``);
      }
      await fh.sync();
      io.out(
        toJson({ out, size, entries: result.entries, lastSeq: result.lastSeq, lastTime: result.lastTime ? formatNs(result.lastTime) : null }, false) + '\n',
      );
    } finally {
      await fh.close();
    }
    return 0;
  },
};

/**
 * A spool that filled with no collector to free it stopped journaling (node-volume.ts
 * journal-stopped.json): the device went on changing, so a replay to any later instant (or
 * to "the end") would give a state the volume never had at that instant.
 */
async function refusePastStop(dir: string, until: string | undefined, untilSeq: string | undefined, untilMark: string | undefined): Promise<void> {
  let stop: { seq: string; time: string };
  try {
    stop = JSON.parse(await fs.readFile(`${dir}/journal-stopped.json`, 'utf8')) as { seq: string; time: string };
  } catch {
    return;
  }
  const seq = BigInt(stop.seq);
  const time = BigInt(stop.time);
  const past = untilMark === undefined && (until !== undefined ? parseInstant(until) > time : untilSeq !== undefined ? BigInt(untilSeq) > seq : true);
  if (!past) return;
  throw new RewindError(
    ErrorCodes.POINT_OUT_OF_WINDOW,
    `the spool in ${dir} stopped journaling at seq ${seq} (${formatNs(time)}) when it filled with no collector to free it; later writes are not in the journal — give --until at or before ${formatNs(time)}, --until-seq ${seq} or less, or a mark`,
    { details: { stoppedSeq: seq, stoppedTime: time } },
  );
}

/** The spool records the volume size in its state file; a bare journal does not. */
async function volumeSizeOf(dir: string): Promise<bigint | undefined> {
  try {
    const meta = JSON.parse(await fs.readFile(`${dir}/volume.json`, 'utf8')) as { size?: string };
    return meta.size ? BigInt(meta.size) : undefined;
  } catch {
    return undefined;
  }
}

/** Accept either a journal directory or a spool directory (whose journal is in journal/). */
async function journalDirOf(dir: string): Promise<string> {
  const inner = `${dir}/journal`;
  try {
    if ((await fs.stat(inner)).isDirectory()) return inner;
  } catch {
    /* a bare journal directory */
  }
  try {
    await fs.access(dir);
  } catch {
    throw new RewindError(ErrorCodes.NOT_FOUND, `no journal at ${dir}; give the --spool directory of \`rewind serve\` or a journal directory`);
  }
  return dir;
}
