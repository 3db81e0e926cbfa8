import fs from 'node:fs';
import { ErrorCodes, RewindError } from '../core/errors.js';

/**
 * The bytes of one segment on their way to an O_DIRECT file, so journal bytes go from our
 * memory to the device without a page-cache copy.
 *
 * Why: a journal is written once and read rarely, yet buffered appends make the kernel
 * allocate and fill a new page-cache page for every 4 KiB journaled. Under sequential 1 MiB
 * writes that copy was half of all CPU (perf: `copy_folio_from_iter_atomic`), and on this
 * VM a page the guest had handed back to the host costs ~10x more to fill the first time
 * (2 GiB into fresh files: 7.6 s, then 0.57 s once the pages were warm).
 *
 * `append()` copies records into page-aligned chunks (WebAssembly memory: V8 maps it with
 * the page allocator, unlike Node's Buffers) taken from a pool that is reused, so the
 * memory stays warm and the caller's buffers are free as soon as append returns: nothing
 * pins a socket chunk or a payload until the disk write. `writeTo()` writes whole blocks,
 * as O_DIRECT requires: the complete blocks straight from the chunks, the last partial one
 * from a copy padded with zeros, since appends go on filling the chunk while it is written.
 *
 * That partial block is written again, with what follows it, by the next `writeTo()`.
 * Rewriting it is safe: the bytes of records already in it are the same in the old and the
 * new copy, so a write torn at any sector leaves them whole. The zero padding after the last
 * record is what the scanner calls a zero tail: end of log in the last segment
 * (docs/journal-format.md §5, §6). `finish()` truncates it away before the segment stops
 * being the last one, where a zero tail would be corruption.
 */
export const DIRECT_ALIGN = 4096;
const CHUNK = 1 << 20;
const CHUNKS_PER_MEMORY = 8;

// Node's lib typings leave WebAssembly out; this is the one constructor used.
const Wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

/** Aligned single blocks (the padded last block of a write, probes), cut from one chunk at a time. */
const freeTails: Buffer[] = [];

function takeTail(): Buffer {
  if (freeTails.length === 0) {
    const c = takeChunk();
    for (let i = 0; i < CHUNK / DIRECT_ALIGN; i++) freeTails.push(c.subarray(i * DIRECT_ALIGN, (i + 1) * DIRECT_ALIGN));
  }
  return freeTails.pop()!;
}

/**
 * Chunks no longer needed come back here and are handed out again (newest first: the most
 * likely to be warm). Past KEEP_IDLE_CHUNKS idle (a spool queues up to 64 MiB), each 8 MiB memory whose chunks are all
 * back is dropped for the GC to free, so a burst (64 MiB queued per spool, more with many
 * collector volumes) does not stay resident for good.
 */
const KEEP_IDLE_CHUNKS = 64;

class ChunkPool {
  private free: Buffer[] = [];
  private readonly idleOf = new Map<ArrayBufferLike, number>();
  private trimAbove = KEEP_IDLE_CHUNKS;

  take(): Buffer {
    if (this.free.length === 0) {
      const pages = (CHUNKS_PER_MEMORY * CHUNK) / 65536;
      const mem = Buffer.from(new Wasm.Memory({ initial: pages, maximum: pages }).buffer);
      for (let i = 0; i < CHUNKS_PER_MEMORY; i++) this.give(mem.subarray(i * CHUNK, (i + 1) * CHUNK));
    }
    const c = this.free.pop()!;
    this.idleOf.set(c.buffer, this.idleOf.get(c.buffer)! - 1);
    // The trim threshold follows the idle count down, so memories that go idle after a
    // fragmented burst are dropped without waiting for the count to pass its old peak.
    if (this.free.length + CHUNKS_PER_MEMORY < this.trimAbove) this.trimAbove = Math.max(KEEP_IDLE_CHUNKS, this.free.length + CHUNKS_PER_MEMORY);
    return c;
  }

  give(c: Buffer): void {
    this.free.push(c);
    this.idleOf.set(c.buffer, (this.idleOf.get(c.buffer) ?? 0) + 1);
    if (this.free.length > this.trimAbove) this.trim();
  }

  private trim(): void {
    const drop = new Set<ArrayBufferLike>();
    let left = this.free.length;
    for (const [mem, idle] of this.idleOf) {
      if (left - CHUNKS_PER_MEMORY < KEEP_IDLE_CHUNKS) break;
      if (idle === CHUNKS_PER_MEMORY) {
        drop.add(mem);
        left -= CHUNKS_PER_MEMORY;
      }
    }
    if (drop.size > 0) {
      this.free = this.free.filter((c) => !drop.has(c.buffer));
      for (const mem of drop) this.idleOf.delete(mem);
    }
    // Nothing (more) to drop while memories are partly in use: look again after a few more.
    this.trimAbove = Math.max(KEEP_IDLE_CHUNKS, this.free.length + CHUNKS_PER_MEMORY);
  }

  /** For tests: idle chunks, and memories still referenced by the pool. */
  get stats(): { idleChunks: number; memories: number } {
    return { idleChunks: this.free.length, memories: this.idleOf.size };
  }
}

const chunks = new ChunkPool();

function takeChunk(): Buffer {
  return chunks.take();
}

/** For tests (see ChunkPool). */
export function chunkPoolStats(): { idleChunks: number; memories: number } {
  return chunks.stats;
}

export { KEEP_IDLE_CHUNKS };

export class SegmentLog {
  /** chunks[i] holds file bytes [base + i*CHUNK, base + (i+1)*CHUNK). */
  private chunks: Buffer[] = [];
  /** Multiple of DIRECT_ALIGN. */
  private base: number;
  private end: number;
  private written: number;
  private readonly tailBlock: Buffer;
  private released = false;

  /** A log whose file already holds `pos` bytes; `carry` = the file's bytes from the block holding `pos` up to `pos`. */
  constructor(pos: number, carry: Buffer = Buffer.alloc(0)) {
    this.base = pos - (pos % DIRECT_ALIGN);
    if (carry.length !== pos - this.base) throw new RangeError(`carry of ${carry.length} bytes for position ${pos}`);
    this.end = this.base;
    this.written = pos;
    this.chunks.push(takeChunk());
    this.tailBlock = takeTail();
    this.append([carry]);
  }

  /** Logical end: where the next record goes. */
  get position(): number {
    return this.end;
  }

  /** Copy `bufs` to the end. The caller may reuse its buffers as soon as this returns. */
  append(bufs: Buffer[]): void {
    if (this.released) throw new RewindError(ErrorCodes.CLOSED, 'append to a journal segment log that was released');
    for (const src of bufs) {
      let off = 0;
      while (off < src.length) {
        const at = this.end - this.base;
        const idx = Math.floor(at / CHUNK);
        if (idx === this.chunks.length) this.chunks.push(takeChunk());
        const inChunk = at - idx * CHUNK;
        const n = Math.min(src.length - off, CHUNK - inChunk);
        src.copy(this.chunks[idx]!, inChunk, off, off + n);
        off += n;
        this.end += n;
      }
    }
  }

  /** Write everything up to `target` (≤ position) to `fd`. One call at a time. */
  async writeTo(fd: number, target: number): Promise<void> {
    if (this.released) throw new RewindError(ErrorCodes.CLOSED, 'write of a journal segment log that was released');
    if (target > this.end) throw new RangeError(`writeTo(${target}) past the log's end ${this.end}`);
    if (target <= this.written) return;
    const start = alignDown(this.written);
    const stop = alignDown(target);
    const iov: Buffer[] = [];
    for (let x = start; x < stop; ) {
      const idx = Math.floor((x - this.base) / CHUNK);
      const inChunk = x - this.base - idx * CHUNK;
      const n = Math.min(stop - x, CHUNK - inChunk);
      iov.push(this.chunks[idx]!.subarray(inChunk, inChunk + n));
      x += n;
    }
    if (target > stop) {
      const idx = Math.floor((stop - this.base) / CHUNK);
      const inChunk = stop - this.base - idx * CHUNK;
      this.chunks[idx]!.copy(this.tailBlock, 0, inChunk, inChunk + (target - stop));
      this.tailBlock.fill(0, target - stop);
      iov.push(this.tailBlock);
    }
    await writevFully(fd, iov, start);
    this.written = target;
    // Chunks wholly before the block that holds the end are done with.
    while (this.chunks.length > 1 && this.base + CHUNK <= alignDown(this.written)) {
      chunks.give(this.chunks.shift()!);
      this.base += CHUNK;
    }
  }

  /** Drop the zero padding after what was written, and give the memory back. */
  finish(fd: number): void {
    fs.ftruncateSync(fd, this.written);
    this.release();
  }

  /** Give the memory back (the log is not used after this). */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const c of this.chunks.splice(0)) chunks.give(c);
    freeTails.push(this.tailBlock);
  }
}

/**
 * Open a segment file for a SegmentLog: O_DIRECT where the filesystem takes it and our
 * alignment, else plain (tmpfs on older kernels, some FUSE mounts) — the log writes the
 * same whole blocks either way, so the file looks the same. An existing segment (it has a
 * header) is probed with a direct read of its first block; a new one takes `direct`, what
 * the probe found for the journal's directory when the writer opened it.
 */
export function openSegmentFile(file: string, create: boolean, direct = true): { fd: number; direct: boolean } {
  const flags = fs.constants.O_RDWR | (create ? fs.constants.O_CREAT | fs.constants.O_EXCL : 0);
  if (!direct) return { fd: fs.openSync(file, flags, 0o644), direct: false };
  let fd: number;
  try {
    fd = fs.openSync(file, flags | fs.constants.O_DIRECT, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    // Some filesystems create the file and only then refuse O_DIRECT: it is ours now.
    return { fd: fs.openSync(file, create ? fs.constants.O_RDWR | fs.constants.O_CREAT : flags, 0o644), direct: false };
  }
  if (create) return { fd, direct: true };
  const block = takeTail();
  try {
    fs.readSync(fd, block, 0, DIRECT_ALIGN, 0);
    return { fd, direct: true };
  } catch (err) {
    fs.closeSync(fd);
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    return { fd: fs.openSync(file, fs.constants.O_RDWR, 0o644), direct: false };
  } finally {
    freeTails.push(block);
  }
}

/** A log continuing the segment open on `fd` at its logical end `pos` (the partial block is read back). */
export function logAt(fd: number, file: string, pos: number): SegmentLog {
  // (On error the caller closes fd.)
  const block = takeTail();
  try {
    const at = alignDown(pos);
    const got = pos > at ? fs.readSync(fd, block, 0, DIRECT_ALIGN, at) : 0;
    if (got < pos - at) throw new RewindError(ErrorCodes.IO, `journal segment ${file} is shorter (${at + got}) than its last record's end (${pos})`);
    return new SegmentLog(pos, block.subarray(0, pos - at));
  } finally {
    freeTails.push(block);
  }
}

function alignDown(n: number): number {
  return n - (n % DIRECT_ALIGN);
}

async function writevFully(fd: number, iov: Buffer[], pos: number): Promise<void> {
  let list = iov;
  let at = pos;
  for (;;) {
    const total = list.reduce((a, b) => a + b.length, 0);
    const n = await new Promise<number>((resolve, reject) => fs.writev(fd, list, at, (err, written) => (err ? reject(err) : resolve(written))));
    if (n === total) return;
    if (n <= 0 || n % DIRECT_ALIGN !== 0) {
      throw new RewindError(ErrorCodes.IO, `direct journal write at ${at} wrote ${n} of ${total} bytes; the device did not take whole blocks`);
    }
    at += n;
    let skip = n;
    const rest: Buffer[] = [];
    for (const b of list) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(b.subarray(skip));
        skip = 0;
      }
    }
    list = rest;
  }
}
