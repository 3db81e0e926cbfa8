import fs from 'node:fs';
import { execFile } from 'node:child_process';
import type { Backend, BackendCapabilities, BlockSizes, Extent } from './backend.js';
import { ErrorCodes, RewindError, fromSystemError } from '../core/errors.js';
import { DEFAULT_MIN_BLOCK, DEFAULT_PREFERRED_BLOCK, MAX_BLOCK_STATUS_EXTENTS, MAX_REQUEST_PAYLOAD } from './constants.js';
import { HOLE_ZERO, ZERO_ONLY, ZeroBitmap } from './zero-bitmap.js';
import { WRITE_BEHIND_MAX, WriteBehind } from './write-behind.js';

export interface FileBackendOptions {
  /** Export size. Creates the file (sparse) if missing; extends a smaller regular file. */
  size?: bigint | number;
  readOnly?: boolean;
  /**
   * Small writes are made by a second thread after they are acknowledged (write-behind.ts).
   * Only for a backing file whose writes are all in a write-ahead log that is redone onto
   * it after a crash (node-volume.ts).
   */
  writeBehind?: boolean;
  /** Told when a write-behind write fails (every later call then fails too). */
  onWriteBehindFailure?: (err: Error) => void;
}

/** Ranges at least this large are punched with fallocate(1) instead of written with zeros. */
const PUNCH_MIN = 1024 * 1024;
const ZERO_CHUNK = Buffer.alloc(1024 * 1024);
const SYNC_WRITE_MAX = 64 * 1024;
const SYNC_WRITE_STALL_MS = 2;
/** This many stalls inside SYNC_WRITE_STALL_WINDOW_MS, or one this long, mean the kernel is making writes wait. */
const SYNC_WRITE_STALLS = 3;
const SYNC_WRITE_STALL_WINDOW_MS = 100;
const SYNC_WRITE_STALL_LONG_MS = 20;
const SYNC_WRITE_BACKOFF_MS = 1_000;
/** One pwritev of queued contiguous writes carries at most this much (and IOV_MAX iovecs). */
const WRITE_BATCH_MAX = 16 * 1024 * 1024;
const WRITE_BATCH_IOVECS = 1024;

interface QueuedWrite {
  bufs: readonly Buffer[];
  length: number;
  offset: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** pwritev all of `bufs` at `pos`, continuing after short writes (signals, quotas). */
function writevFully(fd: number, bufs: Buffer[], pos: number, cb: (err: NodeJS.ErrnoException | null) => void): void {
  fs.writev(fd, bufs, pos, (err, n) => {
    if (err) return cb(err);
    if (n === 0) return cb(Object.assign(new Error('pwritev wrote nothing'), { code: 'EIO' }));
    let left = n;
    let i = 0;
    while (i < bufs.length && left >= bufs[i]!.length) left -= bufs[i++]!.length;
    if (i === bufs.length) return cb(null);
    const rest = bufs.slice(i);
    rest[0] = rest[0]!.subarray(left);
    writevFully(fd, rest, pos + n, cb);
  });
}

/**
 * A regular file or block device served as an export. I/O is pread/pwrite on one fd
 * shared by every connection (so fdatasync from any connection covers all writes:
 * CAN_MULTI_CONN is honest).
 *
 * TRIM / WRITE_ZEROES: Node has no fallocate binding. Ranges ≥ 1 MiB of a regular file
 * are punched with `fallocate --punch-hole` (util-linux, one process per call — cheaper
 * than writing a megabyte of zeros and it frees the blocks); smaller ranges, NO_HOLE
 * requests and block devices get zeros written. Either way the range reads as zeros
 * afterwards and the ZeroBitmap records it, which is what BLOCK_STATUS reports.
 *
 * With `writeBehind` small writes are handed to a second thread instead (write-behind.ts)
 * and every other call orders itself after them; without it they are written inline.
 */
export class FileBackend implements Backend {
  readonly capabilities: BackendCapabilities;
  /** Every write has reached the kernel (or, write-behind, been copied) when its promise settles. */
  readonly borrowsWriteBuffers = true;
  readonly blockSizes: BlockSizes = { minimum: DEFAULT_MIN_BLOCK, preferred: DEFAULT_PREFERRED_BLOCK, maximum: MAX_REQUEST_PAYLOAD };
  private readonly zeros: ZeroBitmap;
  private closed = false;
  /** Small writes go through the thread pool until then (see pwriteInline). */
  private asyncWritesUntil = 0;
  private stalls = 0;
  private firstStallAt = 0;
  private readonly writeQueue: QueuedWrite[] = [];
  private writing = false;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly behind: WriteBehind | undefined;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly size: bigint,
    private readonly regularFile: boolean,
    readOnly: boolean,
    opts: FileBackendOptions,
  ) {
    this.zeros = new ZeroBitmap(Number(size));
    if (opts.writeBehind && !readOnly) this.behind = new WriteBehind(fd, path, opts.onWriteBehindFailure);
    this.capabilities = { readOnly, flush: true, fua: true, trim: true, zero: true, multiConn: true, blockStatus: true, cache: true };
  }

  static async open(path: string, opts: FileBackendOptions = {}): Promise<FileBackend> {
    const readOnly = opts.readOnly ?? false;
    const want = opts.size === undefined ? undefined : BigInt(opts.size);
    let created = false;
    let fd: number;
    try {
      if (want !== undefined && !readOnly && !fs.existsSync(path)) {
        fd = fs.openSync(path, 'wx+');
        created = true;
      } else {
        fd = fs.openSync(path, readOnly ? 'r' : 'r+');
      }
    } catch (err) {
      throw fromSystemError(err, `open export backing file ${path}`);
    }
    const st = fs.fstatSync(fd, { bigint: true });
    let size: bigint;
    let regular = st.isFile();
    if (st.isBlockDevice()) {
      size = blockDeviceSize(st.rdev);
      regular = false;
      if (want !== undefined && want > size) {
        fs.closeSync(fd);
        throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `block device ${path} is ${size} bytes, smaller than the requested ${want}; omit --size or use a larger device`);
      }
      if (want !== undefined) size = want;
    } else if (regular) {
      size = st.size;
      if (want !== undefined && want > size) {
        if (readOnly) {
          fs.closeSync(fd);
          throw new RewindError(ErrorCodes.READ_ONLY, `${path} is ${size} bytes and read-only; cannot extend it to ${want}`);
        }
        fs.ftruncateSync(fd, Number(want));
      }
      if (want !== undefined) size = want;
    } else {
      fs.closeSync(fd);
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${path} is neither a regular file nor a block device`);
    }
    const b = new FileBackend(path, fd, size, regular, readOnly, opts);
    // A file we just created (or the part we just extended) is known to be a hole, and so
    // is a regular file with no blocks allocated at all (a fresh `truncate -s`): Node has
    // no SEEK_DATA, but st_blocks = 0 says the same for the whole file.
    const unallocated = regular && st.blocks === 0n;
    const knownHoleFrom = created || unallocated ? 0n : want !== undefined && regular && st.size < want ? st.size : size;
    if (knownHoleFrom < size) b.zeros.set(Number(knownHoleFrom), Number(size), HOLE_ZERO);
    return b;
  }

  pread(buf: Buffer, offset: bigint): Promise<void> {
    if (this.behind) return this.behind.overlapping(Number(offset), buf.length).then(() => this.preadNow(buf, offset));
    return this.preadNow(buf, offset);
  }

  private preadNow(buf: Buffer, offset: bigint): Promise<void> {
    return new Promise((resolve, reject) => {
      const step = (done: number): void => {
        fs.read(this.fd, buf, done, buf.length - done, offset + BigInt(done), (err, n) => {
          if (err) return reject(fromSystemError(err, `read ${this.path}`));
          if (n === 0) {
            buf.fill(0, done); // past the end of a shorter file: zeros, like a hole
            return resolve();
          }
          if (done + n < buf.length) return step(done + n);
          resolve();
        });
      };
      step(0);
    });
  }

  pwrite(buf: Buffer, offset: bigint, opts: { fua: boolean }): Promise<void> {
    if (this.behind && buf.length <= WRITE_BEHIND_MAX && !opts.fua) {
      // Marked now: reads of the range wait for the write, so the bitmap may run ahead.
      this.zeros.set(Number(offset), Number(offset) + buf.length, 0);
      return this.behind.submit(buf, Number(offset));
    }
    // (Inline only without write-behind: an inline write must not overtake queued ones.)
    if (!this.behind && buf.length <= SYNC_WRITE_MAX && !opts.fua && Date.now() >= this.asyncWritesUntil) return this.pwriteInline(buf, offset);
    return this.queueWrite([buf], buf.length, Number(offset), opts.fua);
  }

  /**
   * A small write copied into the page cache right here on the event loop: that takes a
   * few microseconds, less than handing it to libuv's thread pool and being woken for the
   * result (random 4 KiB writes at QD16 through the journal: 18.6k → 27.2k IOPS, the
   * futex wake-ups were the biggest kernel cost). When the kernel makes a write wait
   * (dirty-page throttling, a slow device), the event loop must not wait with it, so
   * repeated slow writes send small writes back to the pool for a second (noteStall).
   */
  private pwriteInline(buf: Buffer, offset: bigint): Promise<void> {
    const t0 = performance.now();
    try {
      for (let done = 0; done < buf.length; ) done += fs.writeSync(this.fd, buf, done, buf.length - done, Number(offset) + done);
    } catch (err) {
      return Promise.reject(fromSystemError(err, `write ${this.path}`));
    }
    const took = performance.now() - t0;
    if (took > SYNC_WRITE_STALL_MS) this.noteStall(t0, took);
    this.zeros.set(Number(offset), Number(offset) + buf.length, 0);
    return Promise.resolve();
  }

  /**
   * A write that took a few milliseconds is usually this thread losing the CPU (two cores
   * shared with the pool, the workload and the kernel), not the kernel throttling: on
   * fio 4 KiB QD16 one such write per run sent a whole second of writes through the pool,
   * 25k → 20k IOPS. Dirty-page throttling makes every write wait, so it shows as several
   * stalls close together, or one long one.
   */
  private noteStall(at: number, took: number): void {
    if (at - this.firstStallAt > SYNC_WRITE_STALL_WINDOW_MS) {
      this.firstStallAt = at;
      this.stalls = 0;
    }
    this.stalls++;
    if (this.stalls >= SYNC_WRITE_STALLS || took > SYNC_WRITE_STALL_LONG_MS) {
      this.asyncWritesUntil = Date.now() + SYNC_WRITE_BACKOFF_MS;
      this.stalls = 0;
    }
  }

  pwritev(bufs: readonly Buffer[], offset: bigint, opts: { fua: boolean }): Promise<void> {
    let total = 0;
    for (const b of bufs) total += b.length;
    return this.queueWrite(bufs, total, Number(offset), opts.fua);
  }

  /**
   * Writes through the thread pool go one at a time, and contiguous ones queued behind a
   * running write leave together in one pwritev. ext4 takes the inode lock for every
   * buffered write, so parallel writes to one file only queue in the kernel, and the pool
   * threads waiting there spin for it: sequential 1 MiB QD16, `perf` showed 5% of all CPU
   * in rwsem_spin_on_owner and the page-cache copies of 16 writes racing each other.
   * Ordering is unchanged: writes are issued in arrival order.
   */
  private queueWrite(bufs: readonly Buffer[], length: number, offset: number, fua: boolean): Promise<void> {
    // Large and FUA writes leave after every small write queued for the write-behind thread.
    if (this.behind) return this.behind.drained().then(() => this.enqueueWrite(bufs, length, offset, fua));
    return this.enqueueWrite(bufs, length, offset, fua);
  }

  private enqueueWrite(bufs: readonly Buffer[], length: number, offset: number, fua: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.writeQueue.push({ bufs, length, offset, resolve, reject });
      if (!this.writing) this.nextWrite();
    }).then(() => {
      this.zeros.set(offset, offset + length, 0);
      if (fua) return this.flush();
    });
  }

  private nextWrite(): void {
    const first = this.writeQueue.shift();
    if (!first) {
      this.writing = false;
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    this.writing = true;
    const batch = [first];
    const bufs = [...first.bufs];
    let end = first.offset + first.length;
    let bytes = first.length;
    for (let next = this.writeQueue[0]; next && next.offset === end && bytes + next.length <= WRITE_BATCH_MAX && bufs.length + next.bufs.length <= WRITE_BATCH_IOVECS; next = this.writeQueue[0]) {
      this.writeQueue.shift();
      batch.push(next);
      bufs.push(...next.bufs);
      end += next.length;
      bytes += next.length;
    }
    writevFully(this.fd, bufs, first.offset, (err) => {
      if (err) {
        const e = fromSystemError(err, `write ${this.path}`);
        for (const w of batch) w.reject(e);
      } else {
        for (const w of batch) w.resolve();
      }
      this.nextWrite();
    });
  }

  flush(): Promise<void> {
    if (this.behind) return this.behind.drained().then(() => this.fdatasync());
    return this.fdatasync();
  }

  private fdatasync(): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.fdatasync(this.fd, (err) => (err ? reject(fromSystemError(err, `fdatasync ${this.path}`)) : resolve()));
    });
  }

  trim(offset: bigint, length: number, opts: { fua: boolean }): Promise<void> {
    return this.zero(offset, length, { fua: opts.fua, noHole: false });
  }

  async zero(offset: bigint, length: number, opts: { fua: boolean; noHole: boolean }): Promise<void> {
    const start = Number(offset);
    // A punch must not overtake a queued write to the range (nor zeros written by the pool).
    if (this.behind) await this.behind.drained();
    let punched = false;
    if (!opts.noHole && this.regularFile && length >= PUNCH_MIN) punched = await this.punch(start, length);
    if (!punched) {
      for (let at = 0; at < length; at += ZERO_CHUNK.length) {
        const n = Math.min(ZERO_CHUNK.length, length - at);
        await this.pwrite(ZERO_CHUNK.subarray(0, n), BigInt(start + at), { fua: false });
      }
    }
    this.zeros.set(start, start + length, punched ? HOLE_ZERO : ZERO_ONLY);
    if (opts.fua) await this.flush();
  }

  /** fallocate --punch-hole; false (caller writes zeros) if it is unavailable or fails. */
  private punch(start: number, length: number): Promise<boolean> {
    return new Promise((resolve) => {
      execFile('fallocate', ['--punch-hole', '--offset', String(start), '--length', String(length), this.path], { timeout: 30_000 }, (err) => resolve(!err));
    });
  }

  async blockStatus(offset: bigint, length: number): Promise<Extent[]> {
    return this.zeros.query(Number(offset), Number(offset) + length, MAX_BLOCK_STATUS_EXTENTS).map((r) => ({ offset: BigInt(r.start), length: BigInt(r.end - r.start), flags: r.flags }));
  }

  /** Prefetch: reading through the page cache is the portable posix_fadvise(WILLNEED). */
  async cache(offset: bigint, length: number): Promise<void> {
    const buf = Buffer.allocUnsafe(Math.min(length, ZERO_CHUNK.length));
    for (let at = 0; at < length; at += buf.length) {
      const n = Math.min(buf.length, length - at);
      await this.pread(buf.subarray(0, n), offset + BigInt(at));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      // A failed write-behind rejects here, after its thread stopped: the caller must not
      // call the backing file consistent (node-volume keeps its running marker).
      await this.behind?.close();
    } finally {
      await this.closeFd();
    }
  }

  private async closeFd(): Promise<void> {
    // Queued pool writes go out first: after close their fd number may be another file's.
    if (this.writing) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await new Promise<void>((resolve) => fs.close(this.fd, () => resolve()));
  }
}

/** Size of a block device from sysfs (Node has no BLKGETSIZE64 ioctl). */
function blockDeviceSize(rdev: bigint): bigint {
  const r = Number(rdev);
  const major = (r >> 8) & 0xfff;
  const minor = (r & 0xff) | ((r >> 12) & 0xfff00);
  const sectors = fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim();
  return BigInt(sectors) * 512n;
}
