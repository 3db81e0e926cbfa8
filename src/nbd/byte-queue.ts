/**
 * The bytes a peer has sent and we have not consumed yet, kept as the list of chunks the
 * socket delivered. `take` slices without copying when the bytes sit in one chunk (the
 * common case for 28-byte request headers and small writes) and copies once otherwise;
 * `skip` discards without ever allocating, which is how over-long payloads are drained.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private first = 0;
  private headOffset = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Remove and return exactly n bytes; the caller checks `length >= n` first. */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError(`take(${n}) with only ${this.total} bytes queued`);
    if (n === 0) return Buffer.alloc(0);
    const head = this.chunks[this.first]!;
    const avail = head.length - this.headOffset;
    if (avail >= n) {
      const out = head.subarray(this.headOffset, this.headOffset + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.first]!;
      const part = Math.min(c.length - this.headOffset, n - filled);
      c.copy(out, filled, this.headOffset, this.headOffset + part);
      filled += part;
      this.advance(part);
    }
    return out;
  }

  /** Remove exactly n bytes as a list of slices of the received chunks (no copy). */
  takeList(n: number): Buffer[] {
    if (n > this.total) throw new RangeError(`takeList(${n}) with only ${this.total} bytes queued`);
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[this.first]!;
      const part = Math.min(c.length - this.headOffset, left);
      out.push(c.subarray(this.headOffset, this.headOffset + part));
      this.advance(part);
      left -= part;
    }
    return out;
  }

  /** Remove n bytes into dest at `at` (the caller checks `length >= n`). */
  copyOut(dest: Buffer, at: number, n: number): void {
    if (n > this.total) throw new RangeError(`copyOut(${n}) with only ${this.total} bytes queued`);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.first]!;
      const part = Math.min(c.length - this.headOffset, n - filled);
      c.copy(dest, at + filled, this.headOffset, this.headOffset + part);
      filled += part;
      this.advance(part);
    }
  }

  /**
   * Give the newest chunk memory of its own if any of it is still queued: it may be
   * borrowed (a socket buffer read into again after the current callback returns). Only
   * the newest needs it, as every older chunk was made its own when it was the newest.
   */
  ownNewest(): void {
    if (this.total === 0) return;
    const last = this.chunks.length - 1;
    const from = last === this.first ? this.headOffset : 0;
    this.chunks[last] = Buffer.from(this.chunks[last]!.subarray(from));
    if (last === this.first) this.headOffset = 0;
  }

  /** True when the next n bytes sit in one chunk (take(n) will not copy). */
  contiguous(n: number): boolean {
    const head = this.chunks[this.first];
    return head !== undefined && head.length - this.headOffset >= n;
  }

  /** Discard up to n bytes; returns how many were discarded. */
  skip(n: number): number {
    let left = Math.min(n, this.total);
    const done = left;
    while (left > 0) {
      const c = this.chunks[this.first]!;
      const part = Math.min(c.length - this.headOffset, left);
      this.advance(part);
      left -= part;
    }
    return done;
  }

  /** Read a big-endian uint32 at `at` bytes from the front without consuming. */
  peekUInt32(at: number): number {
    const head = this.chunks[this.first]!;
    if (head.length - this.headOffset >= at + 4) return head.readUInt32BE(this.headOffset + at);
    let v = 0;
    for (let i = 0; i < 4; i++) v = v * 256 + this.peekByte(at + i);
    return v;
  }

  private peekByte(at: number): number {
    let idx = this.first;
    let pos = this.headOffset + at;
    while (pos >= this.chunks[idx]!.length) {
      pos -= this.chunks[idx]!.length;
      idx++;
    }
    return this.chunks[idx]![pos]!;
  }

  /** Hand everything still queued to someone else (e.g. the TLS layer). */
  drainAll(): Buffer[] {
    const out: Buffer[] = [];
    for (let i = this.first; i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      out.push(i === this.first ? c.subarray(this.headOffset) : c);
    }
    this.chunks = [];
    this.first = 0;
    this.headOffset = 0;
    this.total = 0;
    return out;
  }

  private advance(n: number): void {
    this.total -= n;
    this.headOffset += n;
    const head = this.chunks[this.first]!;
    if (this.headOffset === head.length) {
      this.first++;
      this.headOffset = 0;
      if (this.first === this.chunks.length) {
        this.chunks = [];
        this.first = 0;
      } else if (this.first > 64) {
        this.chunks = this.chunks.slice(this.first);
        this.first = 0;
      }
    }
  }
}
