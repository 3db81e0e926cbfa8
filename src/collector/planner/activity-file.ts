import { crc32c } from '@node-rs/crc32';
import fsp from 'node:fs/promises';
import { replaceFileAtomic } from '../../core/atomic-file.js';
import { fromSystemError } from '../../core/errors.js';
import { decodeRuns, encodeRuns } from './run-set.js';
import type { IntervalActivity } from './activity.js';

/**
 * `<volume>/planner/activity.jsonl`: one closed interval per line, `<crc32c hex> <json>`,
 * appended as intervals close. The CRC covers the JSON text. The journal stays the truth:
 * a line that fails its CRC or does not parse ends the file there (a torn tail after a
 * crash, or damage), and what it covered is rebuilt from the entry index on open.
 *
 * JSON line: {"v":1,"start":"<ns>","end":"<ns>","firstSeq":"…","lastSeq":"…","writeOps":n,
 *             "writtenBytes":n,"zeroOps":n,"zeroedBytes":n,"uniqueBytes":n,"grain":g,
 *             "runs":[gap,len,gap,len,…]}
 */
export const ACTIVITY_FILE = 'activity.jsonl';

export function encodeActivityLine(a: IntervalActivity): string {
  const body = JSON.stringify({
    v: 1, start: a.start.toString(), end: a.end.toString(), firstSeq: a.firstSeq.toString(), lastSeq: a.lastSeq.toString(),
    writeOps: a.writeOps, writtenBytes: a.writtenBytes, zeroOps: a.zeroOps, zeroedBytes: a.zeroedBytes, uniqueBytes: a.uniqueBytes,
    grain: a.grain, runs: encodeRuns(a.runs),
  });
  return `${crc32c(Buffer.from(body)).toString(16).padStart(8, '0')} ${body}\n`;
}

interface Line { v: number; start: string; end: string; firstSeq: string; lastSeq: string; writeOps: number; writtenBytes: number; zeroOps: number; zeroedBytes: number; uniqueBytes: number; grain: number; runs: number[] }

/** One line back, or undefined when it is damaged. */
export function decodeActivityLine(line: string): IntervalActivity | undefined {
  const sp = line.indexOf(' ');
  if (sp !== 8) return undefined;
  const body = line.slice(9);
  if (crc32c(Buffer.from(body)).toString(16).padStart(8, '0') !== line.slice(0, 8)) return undefined;
  try {
    const j = JSON.parse(body) as Line;
    if (j.v !== 1) return undefined;
    return {
      start: BigInt(j.start), end: BigInt(j.end), firstSeq: BigInt(j.firstSeq), lastSeq: BigInt(j.lastSeq),
      writeOps: j.writeOps, writtenBytes: j.writtenBytes, zeroOps: j.zeroOps, zeroedBytes: j.zeroedBytes, uniqueBytes: j.uniqueBytes,
      grain: j.grain, runs: decodeRuns(j.runs),
    };
  } catch {
    return undefined;
  }
}

/** The intact prefix of the file, and whether something after it had to be dropped. */
export async function readActivityFile(file: string): Promise<{ intervals: IntervalActivity[]; damaged: boolean }> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { intervals: [], damaged: false };
    throw fromSystemError(err, `read ${file}`);
  }
  const intervals: IntervalActivity[] = [];
  const lines = text.split('\n');
  // The last element is '' after a complete final line; anything else there is a torn tail.
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (i === lines.length - 1 && l === '') return { intervals, damaged: false };
    const a = decodeActivityLine(l);
    if (!a) return { intervals, damaged: true };
    intervals.push(a);
  }
  return { intervals, damaged: false };
}

export async function rewriteActivityFile(file: string, intervals: IntervalActivity[]): Promise<void> {
  try {
    await replaceFileAtomic(file, intervals.map(encodeActivityLine).join(''));
  } catch (err) {
    throw fromSystemError(err, `rewrite ${file}`);
  }
}

export async function appendActivityLines(file: string, intervals: IntervalActivity[]): Promise<void> {
  try {
    await fsp.appendFile(file, intervals.map(encodeActivityLine).join(''));
  } catch (err) {
    throw fromSystemError(err, `append to ${file}`);
  }
}
