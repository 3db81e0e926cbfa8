import { crc32c } from '@node-rs/crc32';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError, fromSystemError } from '../../core/errors.js';
import { fsyncDir } from '../../journal/segment.js';

/**
 * A checkpoint is the full image of a volume as of one seq: a sparse file (`<seq>.img`,
 * holes where the image is zero) plus a manifest (`<seq>.json`) that lists the data extents
 * with one CRC32C each, so restore knows what to read without SEEK_DATA and scrub can audit
 * the image (US 5799147's periodic audit). The manifest's first line is the CRC32C of the
 * JSON on the second line; it is written to a temp name, fsynced and renamed, so a
 * checkpoint exists only once it is complete. The implicit checkpoint 0 is all zeros.
 */
export interface CheckpointManifest {
  version: 1;
  seq: string;
  time: string;
  size: string;
  /** [offset, length, crc32c] of each data extent, ascending, non-overlapping. */
  extents: Array<[number, number, number]>;
}

export interface Checkpoint {
  seq: bigint;
  time: bigint;
  /** Absent for the implicit all-zero checkpoint 0. */
  imagePath?: string;
  manifestPath?: string;
  extents: Array<[number, number, number]>;
}

export const ZERO_CHECKPOINT: Checkpoint = { seq: 0n, time: 0n, extents: [] };
const NAME_RE = /^(\d{20})\.json$/;

export function checkpointBase(dir: string, seq: bigint): string {
  return path.join(dir, seq.toString().padStart(20, '0'));
}

export function encodeManifest(m: CheckpointManifest): string {
  const body = JSON.stringify(m);
  return `${crc32c(Buffer.from(body)).toString(16).padStart(8, '0')}\n${body}\n`;
}

export function decodeManifest(text: string, where: string): CheckpointManifest {
  const nl = text.indexOf('\n');
  const body = text.slice(nl + 1).replace(/\n$/, '');
  const want = parseInt(text.slice(0, nl), 16);
  const got = crc32c(Buffer.from(body));
  if (nl < 0 || want !== got) {
    throw new RewindError(ErrorCodes.CHECKSUM_MISMATCH, `checkpoint manifest ${where} fails its CRC (stored ${text.slice(0, nl)}, computed ${got.toString(16)}); the checkpoint cannot be trusted — restore from a replica or resync the volume`, { details: { segment: path.basename(where), offset: 0 } });
  }
  return JSON.parse(body) as CheckpointManifest;
}

/** Newest complete checkpoint in `dir` (manifests that fail their CRC are reported, not used). */
export async function loadLatestCheckpoint(dir: string): Promise<Checkpoint> {
  const all = await listCheckpointManifests(dir);
  for (const p of all.reverse()) {
    const m = decodeManifest(await fsp.readFile(p, 'utf8'), p);
    return { seq: BigInt(m.seq), time: BigInt(m.time), imagePath: p.replace(/\.json$/, '.img'), manifestPath: p, extents: m.extents };
  }
  return ZERO_CHECKPOINT;
}

export async function listCheckpointManifests(dir: string): Promise<string[]> {
  const names = (await fsp.readdir(dir).catch(() => [] as string[])).filter((n) => NAME_RE.test(n)).sort();
  return names.map((n) => path.join(dir, n));
}

/** Builds a new checkpoint image; `commit` makes it durable and visible atomically. */
export class CheckpointWriter {
  private readonly extents: Array<[number, number, number]> = [];
  private constructor(private readonly fh: FileHandle, private readonly base: string, private readonly size: bigint) {}

  static async create(dir: string, seq: bigint, size: bigint): Promise<CheckpointWriter> {
    const base = checkpointBase(dir, seq);
    try {
      const fh = await fsp.open(`${base}.img.tmp`, 'w');
      await fh.truncate(Number(size));
      return new CheckpointWriter(fh, base, size);
    } catch (err) {
      throw fromSystemError(err, `create checkpoint ${base}.img`);
    }
  }

  async write(offset: bigint, data: Buffer): Promise<void> {
    await this.fh.write(data, 0, data.length, Number(offset));
    this.extents.push([Number(offset), data.length, crc32c(data)]);
  }

  async commit(seq: bigint, time: bigint): Promise<Checkpoint> {
    await this.fh.sync();
    await this.fh.close();
    const m: CheckpointManifest = { version: 1, seq: seq.toString(), time: time.toString(), size: this.size.toString(), extents: this.extents };
    await fsp.rename(`${this.base}.img.tmp`, `${this.base}.img`);
    const tmp = `${this.base}.json.tmp`;
    const fh = await fsp.open(tmp, 'w');
    await fh.writeFile(encodeManifest(m));
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, `${this.base}.json`);
    await fsyncDir(path.dirname(this.base));
    return { seq, time, imagePath: `${this.base}.img`, manifestPath: `${this.base}.json`, extents: this.extents };
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await fsp.rm(`${this.base}.img.tmp`, { force: true });
  }
}

export async function removeCheckpoint(c: Checkpoint): Promise<number> {
  if (!c.manifestPath || !c.imagePath) return 0;
  let freed = 0;
  for (const p of [c.manifestPath, c.imagePath]) {
    const st = await fsp.stat(p).catch(() => null);
    if (st) freed += st.blocks * 512;
    await fsp.rm(p, { force: true });
  }
  return freed;
}
