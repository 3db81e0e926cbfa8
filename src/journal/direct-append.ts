import fs from 'node:fs';
import { ErrorCodes, RewindError } from '../core/errors.js';

/**
 * Appends to one segment file opened with O_DIRECT, so journal bytes go from our memory to
 * the device without a page-cache copy.
 *
 * Why: a journal is written once and read rarely, yet buffered appends make the kernel
 * allocate and fill a new page-cache page for every 4 KiB journaled. Under sequential 1 MiB
 * writes that copy was half of all CPU (perf: `copy_folio_from_iter_atomic`), and on this
 * VM a page the guest had handed back to the host costs ~10x more to fill the first time
 * (2 GiB into fresh files: 7.6 s, then 0.57 s once the pages were warm). The same bytes
 * written O_DIRECT from a warm staging buffer ran at the disk's 0.9–1.3 GB/s.
 *
 * O_DIRECT wants the buffer address, the length and the file offset aligned to the block
 * size, while records have any length. So records are copied into two aligned staging
 * buffers (WebAssembly memory: page-aligned, unlike Node's Buffers), whole chunks are written
 * while the next fills, and the last partial block is written padded with zeros and kept
 * (`carry`), to be written again, with the records that follow it, by the next append.
 *
 * Rewriting that block is safe: the bytes of records already in it are the same in the old
 * and the new copy, so a write torn at any sector leaves them whole. The zero padding after
 * the last record is what the scanner already calls a zero tail: end of log in the last
 * segment (docs/journal-format.md). `finish()` truncates it away before a segment stops
 * being the last one, where a zero tail would be corruption.
 */
export const DIRECT_ALIGN = 4096;
const CHUNK = 1 << 20;

export class DirectAppender {
  private readonly stage: [Buffer, Buffer];
  private cur = 0;
  /** File offset of stage[cur][0]; always a multiple of DIRECT_ALIGN. */
  private blockStart: number;
  /** Bytes of the partial last block, held at stage[cur][0..carryLen). */
  private carryLen: number;

  private constructor(private readonly fd: number, pos: number, stage: [Buffer, Buffer]) {
    this.stage = stage;
    this.blockStart = alignDown(pos);
    this.carryLen = pos - this.blockStart;
  }

  /** Logical end of the file: where the next record goes. */
  get position(): number {
    return this.blockStart + this.carryLen;
  }

  /**
   * Open `file` for direct appends at `pos` (its logical end). Returns null where the
   * filesystem refuses O_DIRECT (tmpfs, some FUSE mounts): the caller writes buffered.
   * `from`: an appender whose segment is finished; its staging memory is taken over.
   */
  static open(file: string, pos: number, create: boolean, from?: DirectAppender): { fd: number; appender: DirectAppender } | null {
    const flags = fs.constants.O_RDWR | (create ? fs.constants.O_CREAT | fs.constants.O_EXCL : 0);
    let fd: number;
    try {
      fd = fs.openSync(file, flags | fs.constants.O_DIRECT, 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') return null;
      throw err;
    }
    try {
      const a = new DirectAppender(fd, pos, from?.stage ?? allocStage());
      // Read the partial block back as the carry; this is also the probe that the device
      // takes our alignment (EINVAL otherwise).
      if (a.carryLen > 0) {
        const got = fs.readSync(fd, a.stage[0], 0, DIRECT_ALIGN, a.blockStart);
        if (got < a.carryLen) throw new RewindError(ErrorCodes.IO, `journal segment ${file} is shorter (${a.blockStart + got}) than its last record's end (${pos})`);
      } else {
        fs.readSync(fd, a.stage[0], 0, DIRECT_ALIGN, a.blockStart);
      }
      return { fd, appender: a };
    } catch (err) {
      fs.closeSync(fd);
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') return null;
      throw err;
    }
  }

  /** Append `bufs` at the logical end. One call at a time. */
  async append(bufs: Buffer[]): Promise<void> {
    let b = this.stage[this.cur];
    let fill = this.carryLen;
    let inflight: Promise<void> | null = null;
    for (const src of bufs) {
      let off = 0;
      while (off < src.length) {
        const n = Math.min(src.length - off, CHUNK - fill);
        src.copy(b, fill, off, off + n);
        fill += n;
        off += n;
        if (fill === CHUNK) {
          // The other buffer's write must be done before it is refilled; this one's runs
          // while the next chunk is copied.
          if (inflight) await inflight;
          inflight = writeFully(this.fd, b, CHUNK, this.blockStart);
          this.blockStart += CHUNK;
          this.cur ^= 1;
          b = this.stage[this.cur];
          fill = 0;
        }
      }
    }
    if (inflight) await inflight;
    if (fill > 0) {
      const len = alignUp(fill);
      b.fill(0, fill, len);
      await writeFully(this.fd, b, len, this.blockStart);
    }
    const keep = alignDown(fill);
    if (keep > 0) b.copyWithin(0, keep, fill);
    this.blockStart += keep;
    this.carryLen = fill - keep;
  }

  /** Drop the zero padding after the last record (before the segment stops being last). */
  finish(): void {
    fs.ftruncateSync(this.fd, this.position);
  }
}

// Node's lib typings leave WebAssembly out; this is the one constructor used.
const Wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

/** Two chunks of page-aligned memory (V8 maps WebAssembly memory with the page allocator). */
function allocStage(): [Buffer, Buffer] {
  const pages = (2 * CHUNK) / 65536;
  const mem = Buffer.from(new Wasm.Memory({ initial: pages, maximum: pages }).buffer);
  return [mem.subarray(0, CHUNK), mem.subarray(CHUNK, 2 * CHUNK)];
}

function alignDown(n: number): number {
  return n - (n % DIRECT_ALIGN);
}

function alignUp(n: number): number {
  return alignDown(n + DIRECT_ALIGN - 1);
}

async function writeFully(fd: number, b: Buffer, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.write(fd, b, done, len - done, pos + done, (err, written) => (err ? reject(err) : resolve(written))),
    );
    if (n <= 0 || n % DIRECT_ALIGN !== 0) {
      throw new RewindError(ErrorCodes.IO, `direct journal write at ${pos + done} wrote ${n} of ${len - done} bytes; the device did not take a whole block`);
    }
    done += n;
  }
}
