/**
 * Memory for WRITE payloads when the socket's receive buffer is reused between reads
 * (user-buffer-reads.ts): each payload is read or copied into a buffer of its own, which
 * lives until the backend is done with it.
 *
 * When the backend gives buffers back once a write settles (Backend.borrowsWriteBuffers),
 * they are reused: buffers of a power-of-two size class, kept in a free list per class.
 * Fresh 1 MiB buffers per request were the alternative, and on this VM fresh memory is
 * dear: each page of it faults in from the host the first time (docs/BENCHMARKS.md,
 * "free page reporting"), and the process grew to 1.1 GB RSS at sequential QD16.
 *
 * Otherwise (the backend keeps the buffer, e.g. a spool whose tail cache holds payloads
 * for the shipper) small payloads are cut from a shared slab, because one ArrayBuffer per
 * 4 KiB write is one more object for the GC to trace and sweep.
 */
const MIN_CLASS = 4096;
/** Free buffers kept per class: enough for the in-flight bound of a connection or two. */
const CLASS_KEEP_BYTES = 64 * 1024 * 1024;
const CLASS_KEEP_MAX = 256;
/**
 * Free buffers kept over all classes. Per class alone, a peer writing every size from
 * 4 KiB to 32 MiB once would leave ~575 MiB held for good.
 */
const TOTAL_KEEP_BYTES = 128 * 1024 * 1024;
const SLAB_BYTES = 256 * 1024;
const SLAB_PIECE_MAX = 64 * 1024;

function classOf(length: number): number {
  let c = MIN_CLASS;
  while (c < length) c *= 2;
  return c;
}

export class PayloadPool {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
  private slab = Buffer.allocUnsafeSlow(0);
  private slabAt = 0;
  private readonly slabs = new WeakSet<ArrayBufferLike>();

  /** A buffer of exactly `length` bytes that `release` may take back. */
  acquire(length: number): Buffer {
    const size = classOf(length);
    const reused = this.free.get(size)?.pop();
    if (reused) this.freeBytes -= size;
    return (reused ?? Buffer.allocUnsafeSlow(size)).subarray(0, length);
  }

  /**
   * Give back a buffer from `acquire` that nothing references any more. Giving back one
   * still in use would let the next payload overwrite it, so callers release exactly once,
   * after the write using it has settled.
   */
  release(buf: Buffer): void {
    const ab = buf.buffer;
    const size = ab.byteLength;
    if (buf.byteOffset !== 0 || size < MIN_CLASS || (size & (size - 1)) !== 0) throw new RangeError('release() of a buffer the pool did not hand out');
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    if (list.length >= Math.min(CLASS_KEEP_MAX, Math.max(1, Math.floor(CLASS_KEEP_BYTES / size)))) return;
    if (this.freeBytes + size > TOTAL_KEEP_BYTES) return;
    list.push(Buffer.from(ab, 0, size));
    this.freeBytes += size;
  }

  /** A buffer the caller keeps for good (never released): small ones share a slab. */
  keep(length: number): Buffer {
    if (length > SLAB_PIECE_MAX) return Buffer.allocUnsafeSlow(length);
    if (this.slabAt + length > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.slabAt = 0;
      this.slabs.add(this.slab.buffer);
    }
    const piece = this.slab.subarray(this.slabAt, this.slabAt + length);
    this.slabAt += (length + 7) & ~7;
    return piece;
  }

  /** Whether `buf` was cut from a slab by keep(): it pins nothing but other kept pieces. */
  isKept(buf: Buffer): boolean {
    return this.slabs.has(buf.buffer);
  }

  /** Free buffers held now, in bytes (tests, metrics). */
  get heldBytes(): number {
    return this.freeBytes;
  }
}

/** Shared by all connections of the process: their payloads are alike. */
export const payloadPool = new PayloadPool();
