import { crc32c } from '@node-rs/crc32';
import fsp from 'node:fs/promises';
import { replaceFileAtomic } from '../core/atomic-file.js';
import { fromSystemError } from '../core/errors.js';

/**
 * Small spool side files (ack state, dirty bitmap) are written whole and atomically:
 * tmp file + fsync + rename + directory fsync, so a crash leaves the old or the new
 * version, never a mix. Each carries a CRC32C trailer so a damaged file is detected
 * rather than trusted (DESIGN §1: "dirty sector table saved with a checksum").
 */
export function writeFileAtomic(p: string, body: Buffer): Promise<void> {
  const withCrc = Buffer.allocUnsafe(body.length + 4);
  body.copy(withCrc, 0);
  withCrc.writeUInt32LE(crc32c(body), body.length);
  return replaceFileAtomic(p, withCrc);
}

export type ReadChecked = { state: 'missing' } | { state: 'bad-checksum'; size: number } | { state: 'ok'; body: Buffer };

export async function readFileChecked(p: string): Promise<ReadChecked> {
  let b: Buffer;
  try {
    b = await fsp.readFile(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw fromSystemError(err, `read ${p}`);
  }
  if (b.length < 4) return { state: 'bad-checksum', size: b.length };
  const body = b.subarray(0, b.length - 4);
  if (crc32c(body) !== b.readUInt32LE(b.length - 4)) return { state: 'bad-checksum', size: b.length };
  return { state: 'ok', body };
}

/** `state.json`: what must survive a restart besides the journal itself. */
export interface SpoolStateFile {
  version: 1;
  /** Highest seq the collector has durably acknowledged. */
  ackedSeq: string;
  /** A dirty bitmap file must exist (dirty tracking happened and was not cleared). */
  bitmapExpected: boolean;
  /** A full resync was found necessary and has not been reported done yet. */
  needsFullResync: boolean;
}

export async function readSpoolState(p: string): Promise<SpoolStateFile | 'missing' | 'bad'> {
  const r = await readFileChecked(p);
  if (r.state === 'missing') return 'missing';
  if (r.state === 'bad-checksum') return 'bad';
  try {
    const s = JSON.parse(r.body.toString('utf8')) as SpoolStateFile;
    if (s.version !== 1 || typeof s.ackedSeq !== 'string') return 'bad';
    return s;
  } catch {
    return 'bad';
  }
}

export function writeSpoolState(p: string, s: SpoolStateFile): Promise<void> {
  return writeFileAtomic(p, Buffer.from(JSON.stringify(s), 'utf8'));
}
