import fs from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from '../core/errors.js';
import type { Backend, BackendCapabilities, Extent, Filter } from './backend.js';
import { NBD_STATE_ZERO } from './constants.js';
import { OverlayExtents } from './overlay-filter-extents.js';

export interface OverlayOptions {
  /** Directory for the overlay file (created if missing). The file is deleted on close. */
  dir: string;
}

/**
 * Throw-away copy-on-write layer: the base is never written. Writes land in a sparse
 * overlay file at the same offsets and are noted in an extent set; trims and write-zeroes
 * are noted as zero ranges (nothing to write). Reads merge overlay over base piece by
 * piece. close() deletes the overlay and closes the base. Used to mount and repair a
 * filesystem from an instant without touching history.
 *
 * FLUSH/FUA succeed without fsync: the overlay is deleted on close and never reopened,
 * so there is no later reader that durability could serve (a crash loses it by design).
 */
export class OverlayBackend implements Backend {
  readonly capabilities: BackendCapabilities;
  readonly extents = new OverlayExtents();
  private closed = false;

  private constructor(private readonly base: Backend, readonly file: string, private readonly fh: FileHandle) {
    this.capabilities = { readOnly: false, flush: true, fua: true, trim: true, zero: true, multiConn: true, blockStatus: true, cache: true };
  }

  static async open(base: Backend, opts: OverlayOptions): Promise<OverlayBackend> {
    try {
      await fsp.mkdir(opts.dir, { recursive: true });
      const file = path.join(opts.dir, `overlay-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.img`);
      const fh = await fsp.open(file, 'wx+');
      await fh.truncate(Number(base.size));
      return new OverlayBackend(base, file, fh);
    } catch (err) {
      throw fromSystemError(err, `create copy-on-write overlay in ${opts.dir}`);
    }
  }

  get size(): bigint {
    return this.base.size;
  }
  get blockSizes() {
    return this.base.blockSizes;
  }

  async pread(buf: Buffer, offset: bigint): Promise<void> {
    const start = Number(offset);
    for (const p of this.extents.pieces(start, start + buf.length)) {
      const sub = buf.subarray(p.start - start, p.end - start);
      if (p.kind === null) await this.base.pread(sub, BigInt(p.start));
      else if (p.kind === 'zero') sub.fill(0);
      else await this.readOverlay(sub, p.start);
    }
  }

  private async readOverlay(sub: Buffer, pos: number): Promise<void> {
    let done = 0;
    while (done < sub.length) {
      const { bytesRead } = await this.fh.read(sub, done, sub.length - done, pos + done);
      if (bytesRead === 0) {
        sub.fill(0, done);
        return;
      }
      done += bytesRead;
    }
  }

  async pwrite(buf: Buffer, offset: bigint): Promise<void> {
    const start = Number(offset);
    let done = 0;
    try {
      while (done < buf.length) done += (await this.fh.write(buf, done, buf.length - done, start + done)).bytesWritten;
    } catch (err) {
      throw fromSystemError(err, `write overlay ${this.file}`);
    }
    this.extents.set(start, start + buf.length, 'data');
  }

  async flush(): Promise<void> {}

  async trim(offset: bigint, length: number): Promise<void> {
    this.extents.set(Number(offset), Number(offset) + length, 'zero');
  }

  async zero(offset: bigint, length: number): Promise<void> {
    this.extents.set(Number(offset), Number(offset) + length, 'zero');
  }

  /** Overlay pieces answer for themselves; base pieces ask the base (stop where it stops). */
  async blockStatus(offset: bigint, length: number): Promise<Extent[]> {
    const start = Number(offset);
    const out: Extent[] = [];
    for (const p of this.extents.pieces(start, start + length)) {
      if (p.kind !== null) {
        out.push({ offset: BigInt(p.start), length: BigInt(p.end - p.start), flags: p.kind === 'zero' ? NBD_STATE_ZERO : 0 });
        continue;
      }
      if (!this.base.capabilities.blockStatus) {
        out.push({ offset: BigInt(p.start), length: BigInt(p.end - p.start), flags: 0 });
        continue;
      }
      const ext = await this.base.blockStatus(BigInt(p.start), p.end - p.start);
      out.push(...ext);
      const covered = ext.reduce((a, e) => a + e.length, 0n);
      if (covered < BigInt(p.end - p.start)) break; // a short answer is allowed; keep ours contiguous
    }
    return out;
  }

  /** Prefetch is advisory; the overlay is local and the base's cache would warm pages we may shadow. */
  async cache(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
    fs.rmSync(this.file, { force: true });
    await this.base.close();
  }
}

/** The filter form: wrap `next` in a throw-away copy-on-write overlay under `opts.dir`. */
export function overlayFilter(opts: OverlayOptions): Filter {
  return (next) => OverlayBackend.open(next, opts);
}
