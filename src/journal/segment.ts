import { crc32c } from '@node-rs/crc32';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, fromSystemError, RewindError } from '../core/errors.js';
import { fsyncDir } from '../core/atomic-file.js';

export { fsyncDir };

/**
 * A journal is a directory of segment files named by the seq of their first record,
 * zero padded to 20 digits so lexical order is numeric order (u64 max has 20 digits).
 * Each segment starts with this header (little-endian), specified in docs/journal-format.md:
 *
 *   off size field
 *     0    8 magic        "RWNDSEG1"
 *     8    4 version      1
 *    12    4 headerSize   40 (lets a later version grow the header)
 *    16    8 firstSeq     seq of the first record in this segment
 *    24    8 createdNs    wall/HLC time the segment was created (informational)
 *    32    4 reserved     0
 *    36    4 crc          CRC32C over bytes 0..35
 */
export const SEGMENT_MAGIC = Buffer.from('RWNDSEG1', 'latin1');
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_SIZE = 40;
export const SEGMENT_SUFFIX = '.seg';
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const NAME_RE = /^(\d{20})\.seg$/;

export interface SegmentHeader {
  version: number;
  firstSeq: bigint;
  createdNs: bigint;
}

export function encodeSegmentHeader(h: { firstSeq: bigint; createdNs: bigint }): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_SIZE);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt32LE(SEGMENT_VERSION, 8);
  b.writeUInt32LE(SEGMENT_HEADER_SIZE, 12);
  b.writeBigUInt64LE(h.firstSeq, 16);
  b.writeBigUInt64LE(h.createdNs, 24);
  b.writeUInt32LE(0, 32);
  b.writeUInt32LE(crc32c(b.subarray(0, 36)), 36);
  return b;
}

export type SegmentHeaderResult =
  | { ok: true; header: SegmentHeader }
  | { ok: false; reason: 'short' | 'bad-magic' | 'bad-crc' | 'bad-version'; detail: string };

export function decodeSegmentHeader(buf: Buffer): SegmentHeaderResult {
  if (buf.length < SEGMENT_HEADER_SIZE) return { ok: false, reason: 'short', detail: `${buf.length} of ${SEGMENT_HEADER_SIZE} header bytes` };
  if (!buf.subarray(0, 8).equals(SEGMENT_MAGIC)) return { ok: false, reason: 'bad-magic', detail: `magic ${buf.subarray(0, 8).toString('hex')}` };
  const want = buf.readUInt32LE(36);
  const got = crc32c(buf.subarray(0, 36));
  if (want !== got) return { ok: false, reason: 'bad-crc', detail: `header crc stored 0x${want.toString(16)}, computed 0x${got.toString(16)}` };
  const version = buf.readUInt32LE(8);
  if (version !== SEGMENT_VERSION || buf.readUInt32LE(12) !== SEGMENT_HEADER_SIZE) {
    return { ok: false, reason: 'bad-version', detail: `version ${version}, header size ${buf.readUInt32LE(12)}; this build reads version ${SEGMENT_VERSION}` };
  }
  return { ok: true, header: { version, firstSeq: buf.readBigUInt64LE(16), createdNs: buf.readBigUInt64LE(24) } };
}

export function segmentName(firstSeq: bigint): string {
  return firstSeq.toString().padStart(20, '0') + SEGMENT_SUFFIX;
}

export function parseSegmentName(name: string): bigint | null {
  const m = NAME_RE.exec(name);
  return m ? BigInt(m[1]) : null;
}

export interface SegmentFile {
  name: string;
  path: string;
  /** From the file name; the header must agree. */
  firstSeq: bigint;
  size: number;
}

/** Segment files of `dir` in seq order. Backups (`*.bak`) and temp files are ignored. */
export async function listSegments(dir: string): Promise<SegmentFile[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    throw fromSystemError(err, `list journal ${dir}`);
  }
  const out: SegmentFile[] = [];
  for (const name of names) {
    const firstSeq = parseSegmentName(name);
    if (firstSeq === null) continue;
    const p = path.join(dir, name);
    const st = await fsp.stat(p);
    out.push({ name, path: p, firstSeq, size: st.size });
  }
  out.sort((a, b) => (a.firstSeq < b.firstSeq ? -1 : a.firstSeq > b.firstSeq ? 1 : 0));
  return out;
}

/** Read the header bytes (may be short) of a segment. */
export async function readSegmentHeaderBytes(p: string): Promise<Buffer> {
  const fh = await fsp.open(p, 'r');
  try {
    const b = Buffer.alloc(SEGMENT_HEADER_SIZE);
    const { bytesRead } = await fh.read(b, 0, SEGMENT_HEADER_SIZE, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Copy a segment aside before a repair cuts it at corruption: `<name>.corrupt-<time>-<pid>.bak`
 * (LevelDB keeps what it drops in lost/; we keep the whole segment next to it so nothing is
 * unrecoverable).
 */
export async function backupCorruptSegment(p: string): Promise<string> {
  const bak = `${p}.corrupt-${stamp()}.bak`;
  await fsp.copyFile(p, bak);
  await syncBackup(p, bak);
  return bak;
}

/**
 * Keep what a torn-tail repair cuts off: bytes [offset, end) of the segment, in
 * `<name>.torn-at-<offset>-<time>-<pid>.bak`. Only those bytes, as the rest stays in the
 * segment: a collector whose disk filled is left with a torn tail by every failed append,
 * and a whole copy per reopen (up to a segment, 64 MiB) took the space just freed, so
 * the next append failed again.
 */
export async function backupTornTail(p: string, offset: number): Promise<string> {
  const src = await fsp.open(p, 'r');
  let bak = '';
  try {
    const { size } = await src.stat();
    // The scan that found the tail and this copy must agree, or the truncation that follows
    // would cut (or, past the end, grow) the segment without a backup of what it changes.
    if (offset > size) throw new RewindError(ErrorCodes.JOURNAL_CORRUPT, `${p} is ${size} bytes, shorter than the torn tail's offset ${offset}; run \`rewind journal verify\` again`);
    bak = `${p}.torn-at-${offset}-${stamp()}.bak`;
    const dst = await fsp.open(bak, 'wx');
    try {
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (let pos = offset; pos < size; ) {
        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (bytesRead === 0) break;
        // write() may take less than asked on a nearly full disk without failing.
        for (let w = 0; w < bytesRead; ) w += (await dst.write(buf, w, bytesRead - w, pos - offset + w)).bytesWritten;
        pos += bytesRead;
      }
      await dst.sync();
    } finally {
      await dst.close();
    }
    await fsyncDir(path.dirname(p));
    return bak;
  } catch (err) {
    // No half-written backup left behind: on a full disk every failed reopen would add one.
    if (bak) await fsp.rm(bak, { force: true }).catch(() => undefined);
    throw fromSystemError(err, `back up the torn tail of ${p}`);
  } finally {
    await src.close();
  }
}

function stamp(): string {
  return `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
}

async function syncBackup(p: string, bak: string): Promise<void> {
  const fh = await fsp.open(bak, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsyncDir(path.dirname(p));
}

const ZEROS = Buffer.alloc(1024 * 1024);

/** Compared a megabyte at a time against zeros (memcmp), not byte by byte: base copies test whole chunks. */
export function isAllZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, buf.length - at);
    if (buf.compare(ZEROS, 0, n, at, at + n) !== 0) return false;
  }
  return true;
}
